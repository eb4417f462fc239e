"""`r1 rl` end to end on the tiny-test base: outputs, metrics log, resume from the last complete checkpoint,
and input errors."""

from __future__ import annotations

import json

import pytest

from r1cli.config import build


def _cfg(model, out, **kw):
    from r1cli.grpo.config import RLConfig

    values = {
        "model": str(model),
        "output": str(out),
        "train_size": 64,
        "per_device_train_batch_size": 8,
        "num_generations": 4,
        "max_completion_length": 24,
        "max_steps": 2,
        "save_steps": 1,
        "learning_rate": 1e-4,
        "disable_tqdm": True,
    }
    values.update(kw)
    return build(RLConfig, values)


def _run(cfg, resume=False):
    from r1cli.commands.common import execute
    from r1cli.stages import rl

    return execute("rl", rl, cfg, "model", resume=resume, overwrite=False, as_json=True)


@pytest.mark.slow
def test_rl_runs_logs_and_resumes(tiny_base_path, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "rl"
    man = _run(_cfg(tiny_base_path, out))
    assert man["status"] == "complete" and man["metrics"]["steps"] == 2
    AutoModelForCausalLM.from_pretrained(out / "model")
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in logged if "reward" in r]
    assert steps == [1, 2]
    for key in ("rewards/accuracy/mean", "rewards/format/mean", "completions/mean_length", "frac_reward_zero_std"):
        assert key in logged[0], key
    assert (out / "curves.png").stat().st_size > 0
    # resume: the step counter continues from the last complete checkpoint, the log keeps its earlier lines
    man2 = _run(_cfg(tiny_base_path, out, max_steps=3), resume=True)
    assert man2["metrics"]["resumed_from"].endswith("checkpoint-2")
    assert man2["metrics"]["steps"] == 3
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "reward" in r] == [1, 2, 3]


@pytest.mark.slow
def test_rl_input_errors(tiny_base_path, tmp_path):
    from r1cli.errors import ConfigError, InputArtifactError

    bad = tmp_path / "rows.jsonl"
    bad.write_text('{"question": "1+1", "final": "2"}\n')
    with pytest.raises(InputArtifactError, match="prompt and answer"):
        _run(_cfg(tiny_base_path, tmp_path / "a", input=str(bad)))
    with pytest.raises(InputArtifactError, match="does not exist"):
        _run(_cfg(tmp_path / "no-model", tmp_path / "b"))
    with pytest.raises(ConfigError, match="at least 2 generations"):
        _cfg(tiny_base_path, tmp_path / "c", num_generations=1)
    with pytest.raises(ConfigError, match="unknown reward"):
        _run(_cfg(tiny_base_path, tmp_path / "d", rewards=[{"name": "acuracy"}]))
