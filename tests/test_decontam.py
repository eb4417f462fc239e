"""Decontamination: a planted 8-gram overlap is dropped, unrelated prompts are kept, the index cache is keyed by
content."""

from __future__ import annotations

import json

import pytest

from r1cli.decontam import Decontaminator, drop_contaminated, ngram_hashes, normalise

EVAL = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "Find the smallest positive integer $n$ such that $n^2 + 3n$ is divisible by 17.",
]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("R1CLI_CACHE", str(tmp_path / "cache"))


def test_normalise_and_short_texts():
    assert normalise("Hello, World! $x^2$") == ["hello", "world", "x", "2"]
    assert len(ngram_hashes("one two three")) == 1  # shorter than n: the whole text
    assert len(ngram_hashes(" ".join(str(i) for i in range(10)))) == 3


def test_planted_overlap_dropped_and_unrelated_kept():
    d = Decontaminator([], texts={"mine": EVAL})
    planted = "Consider this: she sold half as many clips in May. How many apples remain?"
    unrelated = "A farmer has 12 cows and buys 7 more. How many cows does the farmer have now?"
    seven_words = "Natalia sold clips to 48 of her"  # 7 shared words are not an 8-gram
    assert d.match(planted) == "mine"
    assert d.contaminated(EVAL[1].upper().replace(" ", "  "))  # case and spacing do not hide a copy
    assert not d.contaminated(unrelated)
    assert not d.contaminated(seven_words + " cousins yesterday, said Bob.")
    rows = [{"prompt": planted, "answer": "1"}, {"prompt": unrelated, "answer": "19"},
            {"prompt": [{"role": "user", "content": EVAL[0]}], "answer": "72"}]
    kept, dropped = drop_contaminated(rows, "prompt", d)
    assert dropped == 2 and [r["answer"] for r in kept] == ["19"]


def test_builtin_task_test_split_matched_exactly():
    from r1cli.tasks import get_task

    d = Decontaminator(["arith"], task_n=200)
    task = get_task("arith")
    test = task.generate("test", 200)
    train = task.generate("train", 200)
    assert all(d.match(r["prompt"]) == "arith" for r in test[:50])
    # train prompts share 8-grams with test prompts by construction of the grammar, but none is a test prompt
    assert not any(d.contaminated(r["prompt"]) for r in train)
    assert d.summary()["sources"]["arith"]["match"] == "exact"


def test_file_eval_set_and_cache_keyed_by_content(tmp_path):
    f = tmp_path / "bench.jsonl"
    f.write_text("".join(json.dumps({"problem": t, "answer": "1"}) + "\n" for t in EVAL))
    d1 = Decontaminator([str(f)])
    cached = list((tmp_path / "cache" / "decontam").glob("*.npz"))
    assert len(cached) == 1
    d2 = Decontaminator([str(f)])  # from the cache
    assert d2.index == d1.index and d2.contaminated(EVAL[0])
    # same path, new content -> a new key, so the old index is not reused
    f.write_text(json.dumps({"problem": "An entirely different question about triangles and their many angles.",
                             "answer": "2"}) + "\n")
    d3 = Decontaminator([str(f)])
    assert len(list((tmp_path / "cache" / "decontam").glob("*.npz"))) == 2
    assert not d3.contaminated(EVAL[0])


def test_missing_eval_set_is_skipped_not_fatal(tmp_path):
    d = Decontaminator([str(tmp_path / "nope.jsonl")], texts={"mine": EVAL})
    assert str(tmp_path / "nope.jsonl") in d.skipped
    assert d.contaminated(EVAL[0])


def test_shared_benchmarks_when_present():
    from r1cli.tasks.benchmarks import shared_data_dir

    data = shared_data_dir()
    if data is None or not (data / "gsm8k_test.jsonl").is_file():
        pytest.skip("shared benchmark data absent")
    d = Decontaminator(["gsm8k"])
    first = json.loads((data / "gsm8k_test.jsonl").read_text().splitlines()[0])["question"]
    assert d.match("Rephrased: " + first) == "gsm8k"
    # GSM8K train is a different problem set: only a small share shares an 8-gram with test
    # (measured: 94 of 7473 with all default eval sets)
    train = [json.loads(x)["question"] for x in (data / "gsm8k_train.jsonl").read_text().splitlines()[:300]]
    assert sum(d.contaminated(q) for q in train) < 30
