"""Benchmark loaders: the real MATH-500/GSM8K/AIME files, local files with a column mapping, built-in tasks."""

from __future__ import annotations

import json

import pytest

from r1cli.errors import ConfigError, InputArtifactError
from r1cli.tasks.benchmarks import gsm8k_split, load_benchmark, shared_data_dir

SHARED = shared_data_dir()
needs_shared = pytest.mark.skipif(
    SHARED is None or not (SHARED / "math500.jsonl").is_file(), reason="../shared/data is absent"
)


@needs_shared
def test_math500_from_shared_data():
    b = load_benchmark("math500")
    assert b.name == "math500" and b.kind == "math" and b.default_k == 4
    assert len(b.rows) == 500 and b.source.endswith("math500.jsonl")
    r = b.rows[0]
    assert r["prompt"] == r["problem"] and r["answer"] and "\\boxed" in r["solution"]
    assert {"subject", "level", "unique_id"} <= set(r)  # the source's fields are kept
    assert len(load_benchmark("MATH-500", limit=7).rows) == 7  # alias, limit


@needs_shared
def test_gsm8k_and_aime24_from_shared_data():
    g = load_benchmark("gsm8k")
    assert len(g.rows) == 1319 and g.rows[0]["prompt"] == g.rows[0]["question"]
    assert g.rows[0]["answer"] == "18"
    assert g.rows[0]["solution"].endswith("\\boxed{18}$.") and "####" not in g.rows[0]["solution"]
    a = load_benchmark("aime24")
    assert len(a.rows) == 30 and a.default_k == 64 and all(r["answer"].isdigit() for r in a.rows)


def test_shared_data_env_override(tmp_path, monkeypatch):
    (tmp_path / "math500.jsonl").write_text(json.dumps({"problem": "1+1?", "answer": 2, "solution": "\\boxed{2}"}) + "\n")
    monkeypatch.setenv("R1CLI_SHARED_DATA", str(tmp_path))
    b = load_benchmark("math500")
    assert b.source == str(tmp_path / "math500.jsonl")
    assert b.rows == [{"problem": "1+1?", "answer": "2", "solution": "\\boxed{2}", "prompt": "1+1?"}]


def test_local_jsonl_with_column_mapping(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text("\n".join(json.dumps({"q": f"{i}*2?", "final": i * 2, "id": i}) for i in range(5)) + "\n")
    b = load_benchmark(str(f), columns={"prompt": "q", "answer": "final"}, limit=3)
    assert b.name == "mine" and b.kind == "math" and len(b.rows) == 3
    assert b.rows[1] == {"q": "1*2?", "final": 2, "id": 1, "prompt": "1*2?", "answer": "2"}
    with pytest.raises(InputArtifactError, match="no column for prompt"):
        load_benchmark(str(f))  # no mapping and no known column name
    with pytest.raises(ConfigError, match="unknown key"):
        load_benchmark(str(f), columns={"question": "q"})


def test_local_parquet_and_csv_with_default_names(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"problem": ["a?", "b?"], "answer": ["1", "2"]}), tmp_path / "t.parquet")
    b = load_benchmark(str(tmp_path / "t.parquet"))
    assert [r["prompt"] for r in b.rows] == ["a?", "b?"] and [r["answer"] for r in b.rows] == ["1", "2"]
    (tmp_path / "t.csv").write_text("question,answer\nx?,3\n")
    assert load_benchmark(str(tmp_path / "t.csv")).rows[0]["prompt"] == "x?"


def test_hub_style_gsm8k_answer_column_is_split(tmp_path):
    f = tmp_path / "gsm.jsonl"
    f.write_text(json.dumps({"question": "How many?", "answer": "She has 1,000 + 234.\n#### 1,234"}) + "\n")
    r = load_benchmark(str(f)).rows[0]
    assert r["answer"] == "1234"
    assert r["solution"] == "She has 1,000 + 234.\nThe final answer is $\\boxed{1234}$."
    assert gsm8k_split("no marker") is None


def test_builtin_task_is_its_test_split():
    from r1cli.tasks import split_of

    b = load_benchmark("arith", limit=20)
    assert b.kind == "task" and b.task is not None and len(b.rows) == 20
    assert all(split_of(r["prompt"]) == "test" for r in b.rows)
    assert load_benchmark("arith", limit=20).rows == b.rows  # deterministic
    assert len(load_benchmark("countdown", limit=3).rows) == 3


def test_unknown_benchmark_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown benchmark"):
        load_benchmark("not a benchmark")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputArtifactError, match="JSONL"):
        load_benchmark(str(tmp_path / "x.txt"))
