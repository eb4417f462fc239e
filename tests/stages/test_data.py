"""`r1 data`: writes a loadable dataset with a complete manifest; params and errors go through the config."""

from __future__ import annotations

import json

import pytest

from r1cli.cli import main


def r1(*args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code


def test_data_writes_a_dataset(tmp_path, capsys):
    from datasets import load_from_disk

    out = tmp_path / "d"
    assert r1("data", "--task", "arith", "--split", "test", "--n", "40", "--seed", "3", "--output", str(out)) == 0
    ds = load_from_disk(str(out / "data"))
    assert len(ds) == 40 and {"prompt", "answer", "task", "terms"} <= set(ds.column_names)
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete" and man["kind"] == "dataset" and man["data"]["rows"] == 40
    from r1cli.tasks import get_task

    assert ds["prompt"] == [r["prompt"] for r in get_task("arith").generate("test", 40, seed=3)]


def test_data_params_and_cold_start(tmp_path):
    from datasets import load_from_disk

    from r1cli.prompts import extract_answer_tag
    from r1cli.tasks import get_task

    out = tmp_path / "c"
    code = r1("data", "--task", "linear", "--n", "10", "--output", str(out), "--set", "cold_start=true",
              "--set", "params={max_coef: 3, max_x: 5}")
    assert code == 0
    ds = load_from_disk(str(out / "data"))
    task = get_task("linear", max_coef=3, max_x=5)
    for row in ds:
        assert 2 <= row["a"] <= 3 and abs(int(row["answer"])) <= 5
        assert row["completion"].startswith("<think>\nStep by step:\n")
        assert task.verify(row, extract_answer_tag(row["completion"]))


def test_cold_start_in_the_chat_shape(tmp_path, capsys):
    from datasets import load_from_disk

    from r1cli.rewards.format import is_chat_format
    from r1cli.tasks import get_task

    out = tmp_path / "b"
    assert r1("data", "--task", "addition", "--n", "8", "--cold-start", "--output", str(out),
              "--set", "answer_format=boxed", "--set", "params={min_digits: 3, max_digits: 3}") == 0
    assert "Saving the dataset" not in capsys.readouterr().err  # datasets' bars stay off stderr
    task = get_task("addition", min_digits=3, max_digits=3)
    for row in load_from_disk(str(out / "data")):
        assert row["completion"].endswith(f"</think>\nThe answer is \\boxed{{{row['answer']}}}.")
        assert is_chat_format(row["completion"]) and "<answer>" not in row["completion"]
        assert task.verify(row, row["completion"].rsplit("is ", 1)[1].rstrip("."))


@pytest.mark.parametrize("sets", [["params={bogus: 1}"], ["params={max_terms: 0}"], ["n=0"], ["task=sudoku"]])
def test_bad_values_exit_2(tmp_path, sets, capsys):
    args = ["data", "--output", str(tmp_path / "x")]
    for s in sets:
        args += ["--set", s]
    assert r1(*args) == 2
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.strip()]) <= 3  # one line plus a hint


def test_data_from_a_file_normalises_answers_and_decontaminates(tmp_path, capsys):
    """`r1 data --from FILE`: MATH-style rows get their answer from the solution's last box, rows without a gradable
    answer go, and a prompt copied from an eval set (here a built-in task's test problem) is dropped."""
    from datasets import load_from_disk

    from r1cli.tasks import get_task

    leaked = get_task("arith").generate("test", 1, seed=0)[0]["prompt"]
    src = tmp_path / "math_train.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"problem": "Compute $1+1$.", "solution": "Clearly $1+1=\\boxed{2}$."},
        {"problem": "What is $\\frac{1}{2}+\\frac{1}{2}$?", "solution": "It is $\\boxed{1}$."},
        {"problem": "Prove that there are infinitely many primes.", "solution": "Euclid's argument."},
        {"problem": leaked, "solution": "\\boxed{0}"},
    ]) + "\n")
    out = tmp_path / "d"
    assert r1("data", "--from", str(src), "--set", "columns={prompt: problem, solution: solution}",
              "--output", str(out)) == 0
    ds = load_from_disk(str(out / "data"))
    assert ds["prompt"] == ["Compute $1+1$.", "What is $\\frac{1}{2}+\\frac{1}{2}$?"]
    assert ds["answer"] == ["2", "1"]
    m = json.loads((out / "manifest.json").read_text())["metrics"]
    assert (m["read"], m["no_answer"], m["decontaminated"], m["rows"]) == (4, 1, 1, 2)


def test_data_from_gsm8k_is_the_train_split(tmp_path, capsys):
    from datasets import load_from_disk

    from r1cli.tasks.benchmarks import shared_data_dir

    if shared_data_dir() is None:
        pytest.skip("../shared/data is absent")
    out = tmp_path / "g"
    assert r1("data", "--from", "gsm8k", "--n", "50", "--output", str(out)) == 0
    ds = load_from_disk(str(out / "data"))
    assert len(ds) == 50 and all(a.replace("-", "").replace(".", "").isdigit() for a in ds["answer"])
    test_prompts = {json.loads(line)["question"] for line in (shared_data_dir() / "gsm8k_test.jsonl").open()}
    assert not test_prompts & set(ds["prompt"])


def test_data_from_with_cold_start_is_a_config_error(tmp_path, capsys):
    assert r1("data", "--from", "gsm8k", "--cold-start", "--output", str(tmp_path / "x")) == 2
    assert not (tmp_path / "x").exists()
