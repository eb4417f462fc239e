"""`kill -9` during `r1 rl`, then `--resume`: the step counter continues from the last complete checkpoint, no
prompt is skipped or repeated, and a half-written checkpoint is never picked up.

One output folder goes through three SIGKILLs of a real `python -m r1cli rl` process (the first a fresh run, the
next two `--resume`s), then a final `--resume` in-process; an uninterrupted in-process run with the same seed is the
reference. Kill moments:

1. right after checkpoint-2 is marked complete (the next step is generating or training);
2. as soon as a checkpoint folder newer than those present at the restart appears (usually mid-save, before its
   `.r1cli-complete` marker);
3. right after checkpoint-6 is marked complete; then a half-written `checkpoint-7` (a copy of checkpoint-6 with a
   higher step, no marker) is planted: the last resume must start from checkpoint-6.

`log_prompts` makes every generation batch append its prompts to `prompts.jsonl`; a batch generated for a step
that a kill cut short is generated again after the resume, so for each step the last record counts. Those must
equal the reference's, step for step; each resumed process's first logged step is its checkpoint's + 1.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from .conftest import LoggedSteps, assert_counter_continues, kill_at_checkpoints, r1_inproc, read_jsonl

STEPS = 8
G = 4


def grpo_sets(steps: int = STEPS) -> list:
    """The GRPO settings of this test and test_kill_align's: 2 prompts × G per step, a checkpoint every step,
    every batch's prompts logged."""
    return ["--set", f"num_generations={G}", "--set", f"per_device_train_batch_size={2 * G}",
            "--set", "max_completion_length=16", "--set", f"max_steps={steps}", "--set", "save_steps=1",
            "--set", "learning_rate=1e-4", "--set", "logging_steps=1", "--set", "disable_tqdm=true",
            "--set", "log_prompts=true", "--set", "preflight_prompts=0"]  # tiny-test's groups are all flat


def _args(model: Path, out: Path) -> list:
    return ["rl", "--model", model, "--json", "--output", out, "--seed", 3, "--set", "train_size=64", *grpo_sets()]


def prompts_by_step(out: Path) -> dict[int, list[str]]:
    """prompts.jsonl (log_prompts) as {step: prompts}; a batch regenerated after a kill overrides the earlier one."""
    # the last generation for a step is the one that was trained on
    return {rec["step"]: rec["prompts"] for rec in read_jsonl(out / "prompts.jsonl")}


@pytest.mark.slow
def test_rl_survives_three_kills(tiny_base_path, tmp_path):
    rng = random.Random(5)
    ref = tmp_path / "ref"
    r = r1_inproc(*_args(tiny_base_path, ref))
    assert r.code == 0, r.stderr
    assert json.loads((ref / "manifest.json").read_text())["metrics"]["steps"] == STEPS
    want = prompts_by_step(ref)
    assert sorted(want) == list(range(1, STEPS + 1))
    flat = [p for s in sorted(want) for p in want[s]]
    assert len(set(flat)) == STEPS * 2 and len(flat) == STEPS * 2 * G  # 2 prompts × G per step, none repeated

    out = tmp_path / "killed"
    man, segments = kill_at_checkpoints(_args(tiny_base_path, out), out / "trainer", out, tmp_path / "killed.log",
                                        rng, LoggedSteps(out / "metrics.jsonl", "reward"))
    last = segments[-1][0]
    assert man["metrics"]["resumed_from"].endswith(f"checkpoint-{last}")  # not the planted checkpoint-{last + 1}
    assert man["metrics"]["steps"] == STEPS
    assert_counter_continues(segments, STEPS)  # each resumed process continued the step counter (not from 0)

    # the same prompts, step for step, as the uninterrupted run: none skipped, none repeated
    assert prompts_by_step(out) == want
    regenerated = sum(1 for _ in (out / "prompts.jsonl").read_text().splitlines()) - STEPS
    print(f"rl: 3 kills survived; resumed from checkpoints {[c for c, _ in segments]}, "
          f"{regenerated} generation batch(es) redone after a kill")
