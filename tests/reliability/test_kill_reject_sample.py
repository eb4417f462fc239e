"""`kill -9` during `r1 reject-sample`, then `--resume`: the dataset equals an uninterrupted run's, row for row.

One output folder, three kills of a real `python -m r1cli` process (each resumed): while starting up (output prepared,
no shard yet), right after the first shard's record in the keyed log `shards.jsonl`, and once two more shards are
logged (a small seeded random delay after each condition, so a kill may land while a record is being written). The
last resume runs in-process. Then the shard log, the dataset rows and the manifest counts equal the uninterrupted
run's.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from .conftest import kill_when, r1_inproc, start_r1

N_PROMPTS, SHARD = 16, 2
N_SHARDS = N_PROMPTS // SHARD


def _args(model: Path, out: Path) -> list:
    return ["reject-sample", "--model", model, "--json", "--output", out,
            "--set", f"num_prompts={N_PROMPTS}", "--set", f"shard_size={SHARD}", "--set", "n=3",
            "--set", "max_new_tokens=32", "--set", "temperature=1.0", "--set", "eval_sets=[arith]",
            "--set", "drop_truncated=false", "--set", "filters.require_format=false"]


def _logged(out: Path) -> int:
    """Shards logged whole (a torn last line is not a record)."""
    log = out / "shards.jsonl"
    return log.read_bytes().count(b"\n") if log.is_file() else 0


def _metrics(man: dict) -> dict:
    skip = {"samples_per_s", "rows_per_s", "shards_resumed", "generation_seconds"}
    return {k: v for k, v in man["metrics"].items() if k not in skip}


@pytest.mark.slow
def test_reject_sample_survives_three_kills(tiny_base_path, tmp_path):
    import datasets

    rng = random.Random(6)
    ref = tmp_path / "ref"
    r = r1_inproc(*_args(tiny_base_path, ref))
    assert r.code == 0, r.stderr
    ref_man = json.loads((ref / "manifest.json").read_text())
    assert ref_man["metrics"]["shards"] == N_SHARDS and ref_man["metrics"]["samples"] == N_PROMPTS * 3

    out = tmp_path / "killed"
    log = tmp_path / "killed.log"
    seen = {"logged": 0}
    moments = [
        ("startup", lambda: (out / "config.yaml").exists()),
        ("after the first shard record", lambda: _logged(out) >= 1),
        ("after two more shard records", lambda: _logged(out) >= seen["logged"] + 2),
    ]
    for i, (name, cond) in enumerate(moments):
        seen["logged"] = _logged(out)
        proc = start_r1(_args(tiny_base_path, out) + (["--resume"] if i else []), log)
        killed = kill_when(proc, cond, rng)
        assert killed, f"reject-sample finished before the kill moment {name!r}:\n{log.read_text()[-2000:]}"
        assert not (out / "manifest.json").exists(), "a killed run left a manifest"
    done = _logged(out)
    assert 0 < done < N_SHARDS, f"the kills did not interrupt sampling ({done} shards logged)"

    r = r1_inproc(*_args(tiny_base_path, out), "--resume")
    assert r.code == 0, r.stderr
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete"
    assert man["metrics"]["shards_resumed"] == done  # a shard whose record was torn by the kill is remade
    assert _metrics(man) == _metrics(ref_man)
    got = datasets.load_from_disk(str(out / "data")).to_list()
    want = datasets.load_from_disk(str(ref / "data")).to_list()
    assert got == want, "rows lost, duplicated or changed by the kills"
    assert (out / "shards.jsonl").read_bytes() == (ref / "shards.jsonl").read_bytes(), \
        "the shard log differs from the uninterrupted run's"
    print(f"reject-sample: 3 kills survived ({done} of {N_SHARDS} shards done before the last resume)")
