"""Held-out task eval during GRPO (`eval_every`, `r1cli.grpo.heldout`): which set it evaluates, the reward-up /
held-out-down alarm, the best step and its checkpoint, resume, and an `r1 rl` run end to end (metrics.jsonl, curves,
manifest blocks, with the preflight on)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from r1cli.errors import ConfigError, InputArtifactError


def _cfg(**kw):
    from r1cli.config_loader import build
    from r1cli.stages.rl_config import RLConfig

    values = {"model": "tiny", "eval_every": 2, "eval_limit": 20, "eval_k": 2, "max_completion_length": 32}
    values.update(kw)
    return build(RLConfig, values)


def test_heldout_set_defaults_to_the_training_task_validation_split(tmp_path, capsys):
    from r1cli.grpo.heldout import load_heldout
    from r1cli.tasks import get_task
    from r1cli.tasks.base import split_of

    b = load_heldout(_cfg(task="countdown"), "rl")
    assert b.name == "countdown-validation" and b.kind == "task" and len(b.rows) == 20
    assert all(split_of(r["prompt"]) == "validation" for r in b.rows)
    # the same problems `r1 eval --benchmark countdown:validation --limit 20` draws
    assert [r["prompt"] for r in b.rows] == [
        r["prompt"] for r in get_task("countdown").generate("validation", 20, seed=0)]
    # training prompts that are also held-out problems are reported
    load_heldout(_cfg(), "rl", [b2["prompt"] for b2 in get_task("arith").generate("validation", 3, seed=0)])
    assert "3 of 20 problems of arith-validation are also training prompts" in capsys.readouterr().err
    data = tmp_path / "rows.jsonl"
    data.write_text('{"prompt": "1+1", "answer": "2"}\n')
    with pytest.raises(ConfigError, match="eval_every needs eval_input"):
        load_heldout(_cfg(input=str(data)), "rl")
    assert load_heldout(_cfg(input=str(data), eval_input=str(data)), "rl").rows[0]["answer"] == "2"
    with pytest.raises(InputArtifactError, match="does not exist"):
        load_heldout(_cfg(eval_input=str(tmp_path / "nope.jsonl")), "rl")


def test_alarm_rule():
    from r1cli.grpo.heldout import reward_up_heldout_down as alarm

    def h(*pairs):
        return [{"train_reward": r, "pass@1": p} for r, p in pairs]

    assert alarm(h((0.1, 0.5), (0.2, 0.4), (0.3, 0.3)))
    assert not alarm(h((0.1, 0.5), (0.2, 0.4)))  # one fall is not two
    assert not alarm(h((0.1, 0.5), (0.2, 0.4), (0.15, 0.3)))  # the reward did not rise twice
    assert not alarm(h((0.1, 0.5), (0.2, 0.4), (0.3, 0.45)))  # held-out recovered
    assert not alarm(h((None, 0.5), (0.2, 0.4), (0.3, 0.3)))  # no training reward before the first eval


def _driven(monkeypatch, pass_at_1: list[float], rewards: list[float], tmp_path):
    """A HeldoutEval driven by hand: a scripted evaluate() (no model), every=1, TRL's callback order (the eval at
    the end of step s, then step s's training log)."""
    import r1cli.evaluation
    from r1cli.grpo.heldout import HeldoutEval

    scores = iter(pass_at_1)

    def fake_evaluate(model, tok, bench, **kw):
        p = next(scores)
        return {"pass@1": p, "cons@k": p, "format_rate": 1.0, "mean_length": 10.0, "truncation_rate": 0.0,
                "ci": {"pass@1": {"se": 0.01}}}

    monkeypatch.setattr(r1cli.evaluation, "evaluate", fake_evaluate)
    cb = HeldoutEval(SimpleNamespace(name="arith", source="task:arith", rows=[{}] * 5), None, _cfg(eval_every=1))
    state = SimpleNamespace(global_step=0, max_steps=len(rewards), is_world_process_zero=True)
    cb.on_train_begin(None, state, None)
    for step, r in enumerate(rewards, start=1):
        state.global_step = step
        cb.on_step_end(None, state, None)
        cb.on_log(None, state, None, logs={"reward": r, "loss": 0.0})
    cb.on_train_end(None, state, None)
    return cb


def test_alarm_best_step_and_checkpoint(monkeypatch, tmp_path, capsys):
    cb = _driven(monkeypatch, [0.2, 0.6, 0.5, 0.4, 0.45], [0.1, 0.2, 0.3, 0.25], tmp_path)
    hist = cb.history
    assert [h["step"] for h in hist] == [0, 1, 2, 3, 4]
    assert [h["train_reward"] for h in hist] == [None, 0.1, 0.2, 0.3, 0.25]  # each eval's own step included
    assert cb.alarms == [3]  # rewards 0.1 -> 0.2 -> 0.3 while pass@1 0.6 -> 0.5 -> 0.4
    err = capsys.readouterr().err
    assert err.count("held-out alarm") == 1 and "best held-out so far: step 1" in err
    (tmp_path / "trainer" / "checkpoint-1").mkdir(parents=True)
    s = cb.summary(tmp_path / "trainer", tmp_path / "model", final_step=4)
    assert s["best_step"] == 1 and s["best_pass@1"] == 0.6 and s["best_checkpoint"].endswith("checkpoint-1")
    assert s["alarms"] == [3] and len(s["evals"]) == 5
    # no checkpoint at the best step: the final model only when the best step is the last one
    assert cb.summary(tmp_path / "elsewhere", tmp_path / "model", final_step=4)["best_checkpoint"] is None
    cb2 = _driven(monkeypatch, [0.1, 0.2, 0.3], [0.5, 0.4], tmp_path)
    assert cb2.summary(None, tmp_path / "model", final_step=2)["best_checkpoint"] == str(tmp_path / "model")
    assert cb2.alarms == []


def test_restore_reads_earlier_evals_back(monkeypatch, tmp_path):
    cb = _driven(monkeypatch, [0.3, 0.4, 0.2], [0.1, 0.2], tmp_path)
    rows = [{"step": 0, "heldout/pass@1": 0.3, "heldout/cons@k": 0.3}, {"step": 1, "heldout/pass@1": 0.4},
            {"step": 1, "reward": 0.1, "loss": 0.0}, {"step": 2, "heldout/pass@1": 0.2},
            {"step": 2, "reward": 0.2, "loss": 0.0}]
    cb.restore(rows, upto=1)
    assert [(h["step"], h["pass@1"], h["train_reward"]) for h in cb.history] == [(0, 0.3, None), (1, 0.4, 0.1)]


@pytest.mark.slow
def test_rl_with_eval_every_logs_heldout_and_marks_the_best(tiny_base_path, tmp_path):
    from r1cli.commands.common import execute
    from r1cli.config_loader import build
    from r1cli.stages import rl
    from r1cli.stages.rl_config import RLConfig

    out = tmp_path / "rl"
    cfg = build(RLConfig, {
        "model": str(tiny_base_path), "output": str(out), "train_size": 64, "per_device_train_batch_size": 8,
        "num_generations": 4, "max_completion_length": 24, "max_steps": 3, "save_steps": 2, "learning_rate": 1e-4,
        "disable_tqdm": True, "rewards": [{"name": "accuracy"}, {"name": "cosine_length"}],
        "preflight_prompts": 8, "eval_every": 2, "eval_limit": 6, "eval_k": 2,
    })
    man = execute("rl", rl, cfg, "model", resume=False, overwrite=False, as_json=True)
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    held = [r for r in logged if "heldout/pass@1" in r]
    assert [r["step"] for r in held] == [0, 2, 3]  # before training, every 2 steps, and the last step
    assert all(0.0 <= r["heldout/pass@1"] <= 1.0 and "heldout/cons@k" in r and "heldout/mean_length" in r
               for r in held)
    assert [r["step"] for r in logged if "reward" in r] == [1, 2, 3]
    h = man["heldout"]
    assert h["benchmark"] == "arith-validation" and h["problems"] == 6 and h["k"] == 2 and len(h["evals"]) == 3
    best = max(h["evals"], key=lambda e: (e["pass@1"], -e["step"]))
    assert h["best_step"] == best["step"] == man["metrics"]["heldout"]["best_step"]
    expected = {0: None, 2: str(out / "trainer" / "checkpoint-2"), 3: str(out / "model")}[best["step"]]
    assert h["best_checkpoint"] == expected
    from PIL import Image

    # reward, accuracy, length and held-out pass@1: four panels of 4.2 inches at 110 dpi
    assert Image.open(out / "curves.png").size[0] == round(4 * 4.2 * 110)
    # the preflight ran before training, into the manifest and preflight.json
    assert man["preflight"]["completions"] == 8 * 4 and (out / "preflight.json").is_file()
    assert man["timings"]["preflight"] >= 0
