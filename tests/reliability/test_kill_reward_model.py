"""`kill -9` during `r1 reward-model`, then `--resume`: the step counter continues from the last complete
checkpoint, and the resumed run holds out the same pairs and ends with the same held-out metrics and weights as an
uninterrupted one.

The pairs are a preference dataset (`r1 data --task preference`), not the built-in split, so that the held-out set
is the one `stages.reward_model._rows` draws by seed (`eval_fraction`): every resumed process draws it again. The
held-out metrics fingerprint it: the untrained head's accuracy (the head is seeded, the checkpoint not yet loaded)
and the final score mean/std written for z-scoring. Kill moments and the planted half-written checkpoint are those
of `test_kill_rl.py` (`conftest.kill_at_checkpoints`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from .conftest import (
    LoggedSteps,
    assert_counter_continues,
    assert_same_weights,
    kill_at_checkpoints,
    r1_inproc,
    r1_run,
)

STEPS = 8
PAIRS = 80  # eval_fraction 0.2: 64 to train on, 8 per step; 16 held out


def _args(model: Path, data: Path, out: Path) -> list:
    return ["reward-model", "--model", model, "--input", data, "--json", "--output", out, "--seed", 3,
            "--set", "eval_fraction=0.2", "--set", "per_device_train_batch_size=8", "--set", "learning_rate=1e-3",
            "--set", "save_steps=1", "--set", "save_total_limit=3", "--set", "logging_steps=1",
            "--set", "disable_tqdm=true", "--set", "warmup_steps=0"]


@pytest.mark.slow
def test_reward_model_survives_three_kills(tiny_base_path, tmp_path):
    rng = random.Random(11)
    data = tmp_path / "pairs"
    r = r1_inproc("data", "--task", "preference", "--n", PAIRS, "--seed", 1, "--output", data)
    assert r.code == 0, r.stderr

    ref = tmp_path / "ref"
    r1_run(_args(tiny_base_path, data, ref), tmp_path / "ref.log")  # the killed processes' thread count
    want = json.loads((ref / "manifest.json").read_text())["metrics"]
    assert want["steps"] == STEPS and want["heldout_pairs"] == PAIRS // 5, want

    out = tmp_path / "killed"
    man, segments = kill_at_checkpoints(_args(tiny_base_path, data, out), out / "checkpoints", out,
                                        tmp_path / "killed.log", rng, LoggedSteps(out / "metrics.jsonl", "loss"))
    last = segments[-1][0]
    got = man["metrics"]
    assert got["resumed_from"].endswith(f"checkpoint-{last}")  # not the planted checkpoint-{last + 1}
    assert_counter_continues(segments, STEPS)

    # the same held-out pairs (the untrained head's accuracy, per flaw) and the same end: metrics, z-score stats,
    # weights
    same = ("steps", "train_pairs", "heldout_pairs", "heldout_accuracy_untrained", "heldout_accuracy",
            "heldout_accuracy_per_flaw", "heldout_margin")
    assert {k: got[k] for k in same} == {k: want[k] for k in same}
    assert got["train_loss"] == pytest.approx(want["train_loss"], abs=1e-4)  # the whole run's, not the last session's
    stats = json.loads((out / "model" / "r1cli_reward_stats.json").read_text())
    ref_stats = json.loads((ref / "model" / "r1cli_reward_stats.json").read_text())
    assert stats["n"] == ref_stats["n"]
    assert stats["mean"] == pytest.approx(ref_stats["mean"], abs=1e-5)
    assert stats["std"] == pytest.approx(ref_stats["std"], abs=1e-5)
    assert_same_weights(out / "model", ref / "model")
    print(f"reward-model: 3 kills survived; resumed from checkpoints {[c for c, _ in segments]}")
