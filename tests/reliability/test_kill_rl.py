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
import shutil
from pathlib import Path

import pytest

from .conftest import kill_when, r1_inproc, start_r1

STEPS = 8
G = 4
MARKER = ".r1cli-complete"


def _args(model: Path, out: Path) -> list:
    return ["rl", "--model", model, "--json", "--output", out, "--seed", 3,
            "--set", "train_size=64", "--set", f"num_generations={G}", "--set", f"per_device_train_batch_size={2 * G}",
            "--set", "max_completion_length=16", "--set", f"max_steps={STEPS}", "--set", "save_steps=1",
            "--set", "learning_rate=1e-4", "--set", "logging_steps=1", "--set", "disable_tqdm=true",
            "--set", "log_prompts=true", "--set", "preflight_prompts=0"]  # tiny-test's groups are all flat


def _ckpts(out: Path, complete: bool) -> list[int]:
    root = out / "trainer"
    if not root.is_dir():
        return []
    return sorted(
        int(p.name.split("-")[1]) for p in root.glob("checkpoint-*") if not complete or (p / MARKER).is_file()
    )


def _prompts_by_step(out: Path) -> dict[int, list[str]]:
    by_step: dict[int, list[str]] = {}
    for line in (out / "prompts.jsonl").read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the kill
            continue
        by_step[rec["step"]] = rec["prompts"]  # the last generation for a step is the one that was trained on
    return by_step


def _logged_steps(out: Path) -> list[int]:
    steps = []
    for line in (out / "metrics.jsonl").read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "reward" in rec:
            steps.append(rec["step"])
    return steps


@pytest.mark.slow
def test_rl_survives_three_kills(tiny_base_path, tmp_path):
    rng = random.Random(5)
    ref = tmp_path / "ref"
    r = r1_inproc(*_args(tiny_base_path, ref))
    assert r.code == 0, r.stderr
    assert json.loads((ref / "manifest.json").read_text())["metrics"]["steps"] == STEPS
    want = _prompts_by_step(ref)
    assert sorted(want) == list(range(1, STEPS + 1))
    flat = [p for s in sorted(want) for p in want[s]]
    assert len(set(flat)) == STEPS * 2 and len(flat) == STEPS * 2 * G  # 2 prompts × G per step, none repeated

    out = tmp_path / "killed"
    log = tmp_path / "killed.log"
    segments = []  # (checkpoint resumed from, metrics lines before the process started)
    moments = [
        ("after checkpoint-2 is complete", lambda: 2 in _ckpts(out, complete=True)),
        ("a new checkpoint folder appears", None),
        ("after checkpoint-6 is complete", lambda: 6 in _ckpts(out, complete=True)),
    ]
    for i, (name, cond) in enumerate(moments):
        start_ckpt = max(_ckpts(out, complete=True), default=0)
        if cond is None:
            present = set(_ckpts(out, complete=False))

            def cond(present=present):
                return bool(set(_ckpts(out, complete=False)) - present)

        n_before = len(_logged_steps(out)) if (out / "metrics.jsonl").exists() else 0
        proc = start_r1(_args(tiny_base_path, out) + (["--resume"] if i else []), log)
        killed = kill_when(proc, cond, rng, jitter=0.0 if i == 1 else 0.03)  # mid-save: no delay
        assert killed, f"r1 rl finished before the kill moment {name!r}:\n{log.read_text()[-3000:]}"
        assert not (out / "manifest.json").exists(), "a killed run left a manifest"
        segments.append((start_ckpt, n_before))
    # a half-written checkpoint newer than the last complete one: a copy without the completion marker
    last = max(_ckpts(out, complete=True))
    assert last >= 6
    fake = out / "trainer" / f"checkpoint-{last + 1}"
    if fake.exists():
        shutil.rmtree(fake)
    shutil.copytree(out / "trainer" / f"checkpoint-{last}", fake)
    (fake / MARKER).unlink()
    state = json.loads((fake / "trainer_state.json").read_text())
    state["global_step"] = last + 1
    (fake / "trainer_state.json").write_text(json.dumps(state))

    n_before = len(_logged_steps(out))
    r = r1_inproc(*_args(tiny_base_path, out), "--resume")
    assert r.code == 0, r.stderr
    segments.append((last, n_before))
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete"
    assert man["metrics"]["resumed_from"].endswith(f"checkpoint-{last}")  # not the planted checkpoint-{last + 1}
    assert man["metrics"]["steps"] == STEPS

    # each resumed process continued the step counter from its checkpoint (not from 0)
    steps = _logged_steps(out)
    for (ckpt, n_before), nxt in zip(segments[1:], [s[1] for s in segments[2:]] + [len(steps)], strict=True):
        seg = steps[n_before:nxt]
        if seg:  # a process killed before it finished a step logs nothing
            assert seg[0] == ckpt + 1, (ckpt, seg)
            assert seg == list(range(ckpt + 1, ckpt + 1 + len(seg)))
    assert steps[-1] == STEPS
    assert max(s for s, _ in segments[1:]) >= 2  # some resume started from a checkpoint > 0

    # the same prompts, step for step, as the uninterrupted run: none skipped, none repeated
    assert _prompts_by_step(out) == want
    regenerated = sum(1 for _ in (out / "prompts.jsonl").read_text().splitlines()) - STEPS
    print(f"rl: 3 kills survived; resumed from checkpoints {[c for c, _ in segments[1:]]}, "
          f"{regenerated} generation batch(es) redone after a kill")
