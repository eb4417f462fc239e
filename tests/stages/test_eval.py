"""`r1 eval` end to end: the tiny base on the built-in test split, outputs, resume, oracle, compare."""

from __future__ import annotations

import json
import shutil

import pytest

from r1cli.tasks.benchmarks import shared_data_dir


def run_eval(capsys, *, resume=False, overwrite=False, sets=None, **overrides):
    from r1cli.commands.common import run_stage

    capsys.readouterr()
    run_stage("eval", recipe=None, sets=sets, overrides=overrides, resume=resume, overwrite=overwrite, as_json=True)
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def read_samples(path):
    return [json.loads(line) for line in (path / "samples.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def arith_run(tiny_base_path, tmp_path_factory):
    """One eval of the tiny base: 12 held-out arith problems, k=2 (shared by the tests below)."""
    out = tmp_path_factory.mktemp("eval") / "arith"
    from r1cli.commands.common import run_stage  # module fixtures cannot use capsys

    run_stage("eval", recipe=None, sets=["max_new_tokens=96"],
              overrides={"model": str(tiny_base_path), "benchmarks": ["arith"], "k": 2, "limit": 12,
                         "output": str(out)}, as_json=False)
    return out


@pytest.mark.slow
def test_tiny_base_eval_on_builtin_test_split(arith_run):
    from r1cli.runs import read_manifest

    res = json.loads((arith_run / "results.json").read_text())
    m = res["benchmarks"]["arith"]
    assert m["n_problems"] == 12 and m["k"] == 2
    for key in ("pass@1", "cons@k", "cons@2", "pass@k", "format_rate", "mean_length", "median_length",
                "truncation_rate"):
        assert 0 <= m[key] <= (1 if "length" not in key else 96), key
    assert set(m["ci"]["pass@1"]) == {"se", "ci95"}
    recs = read_samples(arith_run)
    assert sorted(r["index"] for r in recs) == list(range(12))
    assert all(len(r["samples"]) == 2 for r in recs)
    s = recs[0]["samples"][0]
    assert set(s) >= {"completion", "answer", "correct", "cluster", "format", "n_tokens", "finish_reason"}
    # the metrics are what the records say
    p1 = sum(x["correct"] for r in recs for x in r["samples"]) / 24
    assert m["pass@1"] == pytest.approx(p1)
    assert m["format_rate"] == pytest.approx(sum(x["format"] for r in recs for x in r["samples"]) / 24)
    assert "arith" in (arith_run / "report.md").read_text()
    assert (arith_run / "results.png").read_bytes()[:4] == b"\x89PNG"
    man = read_manifest(arith_run)
    assert man["status"] == "complete" and man["kind"] == "eval"
    assert man["metrics"]["arith"]["pass@1"] == m["pass@1"]
    assert man["inputs"] and man["inputs"][0]["content_hash"]


@pytest.mark.slow
def test_resume_generates_only_unfinished_problems(arith_run, tmp_path, capsys):
    import r1cli.generation as gen
    from r1cli.errors import UsageError

    run = tmp_path / "resumed"
    shutil.copytree(arith_run, run)
    (run / "manifest.json").unlink()  # as if killed
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    (run / "samples.jsonl").write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])  # torn 6th record
    cfg = json.loads(json.dumps({"model": json.loads((arith_run / "manifest.json").read_text())["config"]["model"]}))
    res = run_eval(capsys, resume=True, sets=["max_new_tokens=96"], model=cfg["model"], benchmarks=["arith"], k=2,
                   limit=12, output=str(run))
    assert gen.LAST_STATS.completions == 7 * 2  # problems 5..11 only
    recs = read_samples(run)
    assert sorted(r["index"] for r in recs) == list(range(12))
    # sampling is seeded per (prompt, sample): the regenerated problems match the uninterrupted run
    # (up to float rounding of differently shaped batches, which may rarely flip a near-tie token)
    before = {r["index"]: [s["completion"] for s in r["samples"]] for r in read_samples(arith_run)}
    after = {r["index"]: [s["completion"] for s in r["samples"]] for r in recs}
    same = sum(before[i] == after[i] for i in range(5, 12))
    assert same >= 6
    assert res["benchmarks"]["arith"]["n_problems"] == 12
    # a different protocol cannot resume these records
    (run / "manifest.json").unlink()
    with pytest.raises(UsageError, match="another model"):
        run_eval(capsys, resume=True, sets=["max_new_tokens=96"], model=cfg["model"], benchmarks=["arith"], k=3,
                 limit=12, output=str(run))


@pytest.mark.slow
@pytest.mark.skipif(shared_data_dir() is None, reason="../shared/data is absent")
def test_oracle_grades_reference_solutions(tmp_path, capsys):
    """Check (a): the reference solutions pass >= 99% of MATH-500 and all of GSM8K through the grading path."""
    res = run_eval(capsys, benchmarks=["math500", "gsm8k"], oracle=True, output=str(tmp_path / "oracle"))
    m, g = res["benchmarks"]["math500"], res["benchmarks"]["gsm8k"]
    assert m["n_problems"] == 500 and g["n_problems"] == 1319 and m["k"] == g["k"] == 1
    assert m["pass@1"] >= 0.99
    assert g["pass@1"] == 1.0
    assert res["oracle"] is True and res["model"] is None


def test_oracle_needs_solutions(tmp_path, capsys):
    from r1cli.errors import UsageError

    with pytest.raises(UsageError, match="solution"):
        run_eval(capsys, benchmarks=["arith"], oracle=True, limit=3, output=str(tmp_path / "o"))


@pytest.mark.slow
def test_compare_runs_table_json_and_png(arith_run, tmp_path, capsys):
    from r1cli.stages.eval import compare_runs

    other = tmp_path / "other"
    shutil.copytree(arith_run, other)
    capsys.readouterr()
    compare_runs([arith_run, other], output=tmp_path / "cmp.png")
    table = capsys.readouterr().out
    assert "pass@1" in table and "cons@2" in table and "arith" in table and "other" in table
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    obj = compare_runs([arith_run, other], output=None, as_json=True)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == obj and len(obj["runs"]) == 2
    assert obj["runs"][0]["benchmarks"]["arith"]["pass@1"] == obj["runs"][1]["benchmarks"]["arith"]["pass@1"]


def test_compare_refuses_a_folder_without_results(tmp_path):
    from r1cli.errors import InputArtifactError
    from r1cli.stages.eval import compare_runs

    with pytest.raises(InputArtifactError, match="no eval results"):
        compare_runs([tmp_path])


def test_prefilled_think_is_detected():
    from r1cli.prompts import prefilled_think

    assert prefilled_think("<|im_start|>assistant\n<think>\n") == "<think>\n"
    assert prefilled_think("<|im_start|>assistant\n") == ""
    assert prefilled_think("a <think> b </think> c") == ""
