"""`kill -9` during `r1 eval` and `r1 coldstart`, then `--resume`: the run completes and equals an uninterrupted one.

Each test chains its kills on one output folder: a real `python -m r1cli` process is started (or resumed), SIGKILLed
at a chosen moment (found by polling the files the stage writes, plus a small seeded random delay), resumed again;
the last resume runs in-process. Moments:

- eval: while starting up (output prepared, no record yet), after a few problems' records, near the end;
- coldstart: while starting up, right after a checkpoint is marked complete, as soon as a newer checkpoint folder
  appears (usually mid-save, before its completion marker).

Then: eval's `samples.jsonl` has every problem exactly once and each problem's samples equal the uninterrupted run's
(sampling is seeded per prompt and sample; `batch_size=1` makes the arithmetic independent of batch shape);
coldstart's step counter continues from the last complete checkpoint to the uninterrupted run's final step, its
logged steps never repeat, and its final weights equal the uninterrupted run's.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from .conftest import assert_same_weights, ckpt_steps, kill_when, r1_inproc, start_r1


def _lines(p: Path) -> int:
    try:
        return p.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------------------------------------- eval

N_PROBLEMS = 16


def _eval_args(model: Path, out: Path) -> list:
    return ["eval", "--model", model, "--benchmark", "arith", "--limit", N_PROBLEMS, "--k", 2,
            "--set", "max_new_tokens=48", "--set", "batch_size=1", "--json", "--output", out]


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_eval_survives_three_kills(tiny_base_path, tmp_path):
    rng = random.Random(8)
    ref = tmp_path / "ref"
    r = r1_inproc(*_eval_args(tiny_base_path, ref))
    assert r.code == 0, r.stderr
    ref_results = json.loads(r.stdout)

    out = tmp_path / "killed"
    samples = out / "samples.jsonl"
    log = tmp_path / "killed.log"
    moments = [
        ("startup", lambda: (out / "config.yaml").exists()),
        ("after a few records", lambda: _lines(samples) >= 3),
        ("near the end", lambda: _lines(samples) >= N_PROBLEMS - 3),
    ]
    kills = 0
    for i, (name, cond) in enumerate(moments):
        args = _eval_args(tiny_base_path, out) + (["--resume"] if i else [])
        proc = start_r1(args, log)
        killed = kill_when(proc, cond, rng)
        assert killed, f"eval finished before the kill moment {name!r}:\n{log.read_text()[-2000:]}"
        assert not (out / "manifest.json").exists(), "a killed run left a manifest"
        kills += 1
    assert 0 < _lines(samples) < N_PROBLEMS, "the kills did not interrupt generation"

    r = r1_inproc(*_eval_args(tiny_base_path, out), "--resume")
    assert r.code == 0, r.stderr
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"

    recs = _records(out)
    keys = [(x["benchmark"], x["index"]) for x in recs]
    assert len(keys) == len(set(keys)) == N_PROBLEMS, "records lost or duplicated"
    want = {(x["benchmark"], x["index"]): x for x in _records(ref)}
    for rec in recs:
        old = want[(rec["benchmark"], rec["index"])]
        assert rec["samples"] == old["samples"], f"problem {rec['index']} differs from the uninterrupted run"
        assert (rec["key"], rec["cons_answer"]) == (old["key"], old["cons_answer"])
    got = json.loads(r.stdout)["benchmarks"]["arith"]
    assert {k: got[k] for k in ("pass@1", "cons@k", "n_problems")} == {
        k: ref_results["benchmarks"]["arith"][k] for k in ("pass@1", "cons@k", "n_problems")}
    print(f"eval: {kills} kills survived")


# ---------------------------------------------------------------------------------------------- coldstart

STEPS = 32  # 128 rows / 4 per step, one epoch


def _coldstart_args(model: Path, data: Path, out: Path) -> list:
    return ["coldstart", "--model", model, "--input", data, "--json", "--output", out,
            "--set", "per_device_train_batch_size=4", "--set", "learning_rate=1e-3", "--set", "max_length=256",
            "--set", "save_steps=4", "--set", "logging_steps=1", "--set", "disable_tqdm=true",
            "--set", "save_total_limit=3", "--set", "warmup_ratio=0"]


def _complete_ckpts(out: Path) -> set[int]:
    return set(ckpt_steps(out / "checkpoints", complete=True))


def _ckpt_dirs(out: Path) -> set[int]:
    return set(ckpt_steps(out / "checkpoints"))


@pytest.mark.slow
def test_coldstart_survives_three_kills(tiny_base_path, tmp_path):
    rng = random.Random(8)
    data = tmp_path / "data"
    r = r1_inproc("data", "--cold-start", "--n", 128, "--output", data)
    assert r.code == 0, r.stderr

    ref = tmp_path / "ref"
    r = r1_inproc(*_coldstart_args(tiny_base_path, data, ref))
    assert r.code == 0, r.stderr
    want = json.loads((ref / "manifest.json").read_text())["metrics"]
    assert want["steps"] == STEPS

    out = tmp_path / "killed"
    log = tmp_path / "killed.log"
    seen: dict[str, set[int]] = {}

    def after_new_complete():
        return bool(_complete_ckpts(out) - seen["complete"])

    def new_ckpt_folder():
        return bool(_ckpt_dirs(out) - seen["dirs"])

    moments = [("startup", lambda: (out / "config.yaml").exists()),
               ("right after a checkpoint is complete", after_new_complete),
               ("as a newer checkpoint folder appears", new_ckpt_folder)]
    kills = 0
    for i, (name, cond) in enumerate(moments):
        seen["complete"], seen["dirs"] = _complete_ckpts(out), _ckpt_dirs(out)
        proc = start_r1(_coldstart_args(tiny_base_path, data, out) + (["--resume"] if i else []), log)
        killed = kill_when(proc, cond, rng)
        assert killed, f"coldstart finished before the kill moment {name!r}:\n{log.read_text()[-2000:]}"
        assert not (out / "manifest.json").exists(), "a killed run left a manifest"
        kills += 1
    last = max(_complete_ckpts(out), default=0)
    assert 0 < last < STEPS, f"the kills did not interrupt training (last complete checkpoint {last})"

    r = r1_inproc(*_coldstart_args(tiny_base_path, data, out), "--resume")
    assert r.code == 0, r.stderr
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete"
    m = man["metrics"]
    assert m["resumed_from"] and m["resumed_from"].endswith(f"checkpoint-{last}"), m["resumed_from"]
    assert m["steps"] == STEPS, "the step counter did not continue to the planned total"
    # the whole run's mean loss, though the checkpoint resumed from was rotated away (save_total_limit) meanwhile
    assert m["train_loss"] == pytest.approx(want["train_loss"], abs=1e-3)
    state = json.loads((out / "checkpoints" / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    steps = [h["step"] for h in state["log_history"] if "loss" in h]
    assert steps == list(range(1, STEPS + 1)), "logged steps repeat or skip across the resumes"
    assert_same_weights(out / "model", ref / "model")
    print(f"coldstart: {kills} kills survived (resumed from checkpoint-{last})")
