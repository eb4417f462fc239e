"""`kill -9` during `r1 distill`'s training (after its trace log is complete), then `--resume`: the traces are not
generated again, the selection gives the same rows, and the student ends as in an uninterrupted run.

distill trains with `r1 coldstart`'s SFT code (`stages.sft.train_sft`) but adds its own state before it: the
trace log `traces.jsonl` (kept across resumes, read back instead of calling the teacher) and the selection redone
from it on every resume. The three kill moments and the planted half-written checkpoint are those of
`test_kill_rl.py` (`conftest.kill_at_checkpoints`); SFT writes no metrics.jsonl, so the steps each process trained
are read from the checkpoints it wrote (`conftest.SavedSteps`: every step saved, none rotated away).

The untrained tiny-test teacher gets no arith problem right, so the prompts are arith train problems in a file,
a third with their gold answer (every trace rejected as incorrect: the selection is exercised) and the rest
without (kept, filtered for readability only).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from .conftest import SavedSteps, assert_counter_continues, assert_same_weights, kill_at_checkpoints, r1_run

STEPS = 8
N_PROMPTS, TRACES = 24, 2  # every third prompt has its gold answer


def _args(model: Path, prompts: Path, out: Path) -> list:
    return ["distill", "--model", model, "--teacher", model, "--input", prompts, "--json", "--output", out,
            "--seed", 3, "--set", f"num_traces={TRACES}", "--set", "max_new_tokens=32", "--set", "temperature=1.0",
            "--set", "keep_truncated=true", "--set", "decontaminate_against=[arith]",
            "--set", "filters={require_format: false, max_repetition: null, max_language_mixing: null}",
            "--set", "per_device_train_batch_size=4", "--set", "learning_rate=1e-3", "--set", "max_length=256",
            "--set", f"max_steps={STEPS}", "--set", "warmup_ratio=0", "--set", "save_steps=1",
            "--set", "save_total_limit=null", "--set", "logging_steps=1", "--set", "disable_tqdm=true"]


@pytest.mark.slow
def test_distill_training_survives_three_kills(tiny_base_path, tmp_path):
    import datasets

    from r1cli.tasks import get_task

    rng = random.Random(13)
    prompts = tmp_path / "prompts.jsonl"
    rows = get_task("arith").generate("train", N_PROMPTS, seed=5)
    prompts.write_text("".join(json.dumps({"prompt": r["prompt"], "answer": r["answer"] if i % 3 == 0 else None})
                               + "\n" for i, r in enumerate(rows)))

    ref = tmp_path / "ref"
    r1_run(_args(tiny_base_path, prompts, ref), tmp_path / "ref.log")  # the killed processes' thread count
    want = json.loads((ref / "manifest.json").read_text())["metrics"]
    assert want["train"]["steps"] == STEPS
    counts = want["traces"]
    graded = len(range(0, N_PROMPTS, 3)) * TRACES
    assert counts["rejected"]["incorrect"] == graded and counts["kept"] >= 16, counts  # 16 rows: 4 steps per epoch

    out = tmp_path / "killed"
    traces = out / "traces.jsonl"
    first = {}

    class Steps(SavedSteps):
        def mark(self):  # the trace log as the first process left it (complete: it was killed while training)
            if not first and traces.exists():
                first.update(text=traces.read_bytes(), mtime=traces.stat().st_mtime_ns)
            super().mark()

    man, segments = kill_at_checkpoints(_args(tiny_base_path, prompts, out), out / "checkpoints", out,
                                        tmp_path / "killed.log", rng, Steps(out / "checkpoints"))
    last = segments[-1][0]
    got = man["metrics"]
    assert got["train"]["resumed_from"].endswith(f"checkpoint-{last}")  # not the planted checkpoint-{last + 1}
    assert got["train"]["steps"] == STEPS
    assert_counter_continues(segments, STEPS)

    # the trace log of the first process, untouched by the three resumes (not regenerated, not appended to), and
    # the same traces as the uninterrupted run's (written in finishing order: compared as sets of lines)
    assert traces.read_bytes() == first["text"] and traces.stat().st_mtime_ns == first["mtime"]
    assert sorted(traces.read_text().splitlines()) == sorted((ref / "traces.jsonl").read_text().splitlines())
    # the same selection and the same student
    assert got["traces"] == counts
    got_rows = datasets.load_from_disk(str(out / "data")).to_list()
    assert got_rows == datasets.load_from_disk(str(ref / "data")).to_list()
    assert got["train"]["rows"] == want["train"]["rows"]
    for k in ("last_logged_loss", "train_loss"):  # train_loss: the whole run's, not the last session's
        assert got["train"][k] == pytest.approx(want["train"][k], abs=1e-4), k
    assert_same_weights(out / "model", ref / "model")
    print(f"distill: 3 kills survived while training; resumed from checkpoints {[c for c, _ in segments]}")
