"""`r1 rl` end to end on the tiny-test base: outputs, metrics log, resume from the last complete checkpoint,
and input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1cli.config_loader import build


def _cfg(model, out, **kw):
    from r1cli.stages.rl_config import RLConfig

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
        "preflight_prompts": 0,  # tiny-test writes no answers: every group is flat, which the preflight stops
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


def _qlora_cfg(model, out, **kw):
    return _cfg(
        model, out, load_in_4bit=True, use_peft=True, lora_r=4, lora_alpha=8, lora_dropout=0.0,
        max_steps=2, save_steps=100, learning_rate=1e-3, max_completion_length=40,
        rewards=[{"name": "tag_count"}, {"name": "format"}], **kw,  # tag_count: partial credit, groups vary
    )


@pytest.mark.slow
def test_rl_qlora_eval_train_eval_train(tiny_base_path, tmp_path, monkeypatch):
    """QLoRA through the RL stage on CPU: each GRPO step is a no-grad rollout forward (model in eval mode) followed
    by a training forward/backward, so two steps are eval -> train -> eval -> train on the 4-bit layers (q/k/v
    carry a bias, the layers bitsandbytes 0.50 broke). Plus an `r1 eval`-style generation between the steps.
    Control: without the loader's `support_avx512bf16_for_cpu = False` the same run fails (on CPUs with
    AVX512-BF16, where bitsandbytes repacks weights on the no-grad forward)."""
    import bitsandbytes as bnb
    import torch
    from transformers import TrainerCallback

    import r1cli.grpo.trainer as trainer_mod
    from r1cli.generation import generate

    seen: dict = {"layers": [], "evals": 0, "lora_before": None}
    base_init = trainer_mod.R1GRPOTrainer.__init__

    class EvalBetweenSteps(TrainerCallback):
        def __init__(self, trainer):
            self.trainer = trainer

        def on_step_end(self, args, state, control, **kwargs):
            model, tok = self.trainer.model, self.trainer.processing_class
            out = generate(model, tok, ["What is 3+4?"], n=2, temperature=1.0, top_p=1.0, max_new_tokens=8,
                           progress=False)
            assert len(out[0]) == 2
            seen["evals"] += 1
            return control

    def spy_init(self, *a, **kw):
        base_init(self, *a, **kw)
        seen["layers"] = [m for m in self.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        seen["lora_before"] = {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}
        seen["model"] = self.model
        self.add_callback(EvalBetweenSteps(self))

    monkeypatch.setattr(trainer_mod.R1GRPOTrainer, "__init__", spy_init)
    out = tmp_path / "qlora"
    man = _run(_qlora_cfg(tiny_base_path, out))
    assert man["status"] == "complete" and man["metrics"]["steps"] == 2
    layers = seen["layers"]
    assert layers and any(m.bias is not None for m in layers)
    assert all(m.support_avx512bf16_for_cpu is False for m in layers)
    assert seen["evals"] == 2
    after = dict(seen["model"].named_parameters())
    moved = [n for n, p in seen["lora_before"].items() if not torch.equal(p, after[n].detach())]
    assert moved and all("lora_" in n for n in moved)
    assert (out / "model" / "adapter_config.json").is_file()
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "reward" in r] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in logged if "loss" in r)

    if "avx512_bf16" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes never repacks, the control cannot fail")
    monkeypatch.setattr("r1cli.models.disable_bnb_cpu_packing", lambda model: 0)
    with pytest.raises(Exception, match="view of a leaf Variable"):
        _run(_qlora_cfg(tiny_base_path, tmp_path / "control"))
