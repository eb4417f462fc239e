"""`trainlog.run_train_loss`: after `--resume`, the manifest's train_loss is the whole run's mean, not the last
session's (HF's `TrainOutput.training_loss` averages only the steps its `train()` call ran)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from r1cli.trainlog import run_train_loss

LOSSES = [4.0, 3.0, 2.0, 1.0, 0.5, 0.25]  # per step 1..6


def _trainer(logging_steps: int, start: int):
    """The state after resuming from checkpoint-`start` and training to step 6: the log history restored from the
    checkpoint (entries up to `start`), then this session's."""
    hist = []
    for end in range(logging_steps, len(LOSSES) + 1, logging_steps):
        window = LOSSES[end - logging_steps:end]
        hist.append({"loss": sum(window) / len(window), "step": end})
    hist = [h for h in hist if h["step"] <= start] + [h for h in hist if h["step"] > start]
    hist.append({"train_loss": 0.0, "step": len(LOSSES)})  # the end-of-training summary: no "loss" key
    return SimpleNamespace(state=SimpleNamespace(log_history=hist, global_step=len(LOSSES)))


def _ckpt(tmp_path, step):
    return str(tmp_path / f"checkpoint-{step}")  # rotated away by save_total_limit by the end of training


def test_uninterrupted_keeps_hf_value():
    assert run_train_loss(_trainer(1, 0), SimpleNamespace(training_loss=1.5), None) == 1.5


@pytest.mark.parametrize("logging_steps", [1, 2])
def test_resumed_at_a_logging_step_is_the_whole_mean(tmp_path, logging_steps):
    session = SimpleNamespace(training_loss=sum(LOSSES[4:]) / 2)  # HF: steps 5-6 only
    got = run_train_loss(_trainer(logging_steps, 4), session, _ckpt(tmp_path, 4))
    assert got == pytest.approx(sum(LOSSES) / len(LOSSES))


def test_resumed_between_logging_steps_leaves_the_unlogged_steps_out(tmp_path):
    session = SimpleNamespace(training_loss=sum(LOSSES[3:]) / 3)  # steps 4-6; step 3 was never logged
    got = run_train_loss(_trainer(2, 3), session, _ckpt(tmp_path, 3))
    assert got == pytest.approx((LOSSES[0] + LOSSES[1] + sum(LOSSES[3:])) / 5)
