"""`kill -9` during `r1 align`, then `--resume`: the step counter continues from the last complete checkpoint and
the mixture is drawn in the same order, step for step, as in an uninterrupted run.

align shares `r1 rl`'s GRPO loop but adds its own state: the prompt mixture, resampled by weight and shuffled by
seed (`stages.align._mix`), with general prompts scored by a reward model. A resumed process rebuilds the mixture
from scratch, so it must draw the very order the killed one trained on. The three kill moments and the planted
half-written checkpoint are those of `test_kill_rl.py` (`conftest.kill_at_checkpoints`).
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
from .test_kill_rl import grpo_sets, prompts_by_step

STEPS = 8
# 2:1 by weight over 24 + 8 rows: the general source is cycled (11 draws from 8 rows), so the resampling matters
MIXTURE = "[{input: arith, kind: reasoning, n: 24, weight: 2}, {input: general, kind: general, n: 8, weight: 1}]"


def _args(model: Path, rm: Path, out: Path) -> list:
    return ["align", "--model", model, "--json", "--output", out, "--seed", 3, "--set", f"mixture={MIXTURE}",
            "--set", f"reward_model={rm}", "--set", "reward_model_device=cpu", *grpo_sets(STEPS)]


@pytest.mark.slow
def test_align_survives_three_kills(tiny_base_path, tmp_path):
    rng = random.Random(7)
    rm = tmp_path / "rm"  # the helpfulness/harmlessness model: one step of training is enough to be deterministic
    r = r1_inproc("reward-model", "--model", tiny_base_path, "--output", rm, "--seed", 3, "--set", "train_size=16",
                  "--set", "eval_size=8", "--set", "max_steps=1", "--set", "save_strategy=no",
                  "--set", "disable_tqdm=true")
    assert r.code == 0, r.stderr

    ref = tmp_path / "ref"
    r1_run(_args(tiny_base_path, rm, ref), tmp_path / "ref.log")  # the killed processes' thread count
    ref_man = json.loads((ref / "manifest.json").read_text())
    assert ref_man["metrics"]["steps"] == STEPS and ref_man["metrics"]["prompts"] == {"general": 11, "reasoning": 21}
    want = prompts_by_step(ref)
    assert sorted(want) == list(range(1, STEPS + 1))
    general = {x["prompt"] for x in _general_rows()}
    assert any(p in general for s in want for p in want[s]), "no general prompt in the steps run: widen the test"

    out = tmp_path / "killed"
    man, segments = kill_at_checkpoints(_args(tiny_base_path, rm, out), out / "trainer", out,
                                        tmp_path / "killed.log", rng, LoggedSteps(out / "metrics.jsonl", "reward"))
    last = segments[-1][0]
    assert man["metrics"]["resumed_from"].endswith(f"checkpoint-{last}")  # not the planted checkpoint-{last + 1}
    assert man["metrics"]["steps"] == STEPS and man["metrics"]["prompts"] == ref_man["metrics"]["prompts"]
    assert_counter_continues(segments, STEPS)

    # the mixture drawn in the same order, step for step, as the uninterrupted run
    assert prompts_by_step(out) == want
    assert_same_weights(out / "model", ref / "model")
    print(f"align: 3 kills survived; resumed from checkpoints {[c for c, _ in segments]}")


def _general_rows() -> list[dict]:
    from r1cli.tasks.preference import general_rows

    return general_rows("train", 8, seed=3)
