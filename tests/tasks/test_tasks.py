"""Built-in tasks: deterministic, disjoint splits, worked solutions that verify, strict verifiers."""

from __future__ import annotations

import pytest

from r1cli.errors import ConfigError
from r1cli.prompts import extract_answer_tag, extract_think
from r1cli.tasks import available_tasks, get_task, split_of
from r1cli.tasks.arith import parse_terms
from r1cli.tasks.countdown import evaluate_expression

TASKS = ["addition", "arith", "countdown", "linear"]


def test_registry():
    assert available_tasks() == sorted(TASKS)
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        get_task("nope")


@pytest.mark.parametrize("name", TASKS)
def test_deterministic_by_seed(name):
    t = get_task(name)
    a = t.generate("train", 50, seed=3)
    assert a == get_task(name).generate("train", 50, seed=3)
    assert [r["prompt"] for r in a] != [r["prompt"] for r in t.generate("train", 50, seed=4)]
    assert all(r["task"] == name and isinstance(r["answer"], str) for r in a)


@pytest.mark.parametrize("name", TASKS)
def test_splits_disjoint_by_hash(name):
    t = get_task(name)
    train = t.generate("train", 2000, seed=0)
    test = t.generate("test", 300, seed=0)
    assert len({r["prompt"] for r in test}) == 300  # unique
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert all(split_of(r["prompt"]) == "test" for r in test)
    assert all(split_of(r["prompt"]) == "train" for r in train)
    # another seed's test rows are still never train rows of this seed
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in t.generate("test", 300, seed=1)}


@pytest.mark.parametrize("name", TASKS)
def test_solutions_are_correct_in_every_style(name):
    t = get_task(name)
    for row in t.generate("test", 100, seed=1):
        for style in t.styles:
            sol = t.solution(row, style=style)
            assert sol.startswith("<think>\n") and sol.endswith("\n</answer>")
            assert extract_think(sol) is not None
            ans = extract_answer_tag(sol)
            assert t.verify(row, ans), (row, sol)
            assert t.style_of(sol) == style
    with pytest.raises(ConfigError, match="no solution style"):
        t.solution(row, style="nonsense")


def test_addition_columns_and_carries():
    from r1cli.tasks.addition import column_steps

    assert column_steps(89, 74) == [
        "Add the ones: 9 + 4 = 13. Write 3, carry 1.",
        "Add the tens: 8 + 7 + 1 = 16. Write 6, carry 1.",
        "Write the last carry: 1.",
    ]
    assert column_steps(543, 65)[2] == "Add the hundreds: 5 + 0 + 1 = 6. Write 6."
    t = get_task("addition", min_digits=3, max_digits=3)
    rows = t.generate("train", 200, seed=0)
    assert all(100 <= r["a"] <= 999 and 100 <= r["b"] <= 999 and int(r["answer"]) == r["a"] + r["b"] for r in rows)
    sol = t.solution(rows[0])
    assert "Add the hundreds" in sol and sol.endswith(f"<answer>\n{rows[0]['answer']}\n</answer>")
    assert t.verify(rows[0], f"\\boxed{{{rows[0]['answer']}}}") and not t.verify(rows[0], "1")
    with pytest.raises(ConfigError, match="min_digits"):
        get_task("addition", min_digits=3, max_digits=2)


def test_arith_trace_and_bounds():
    t = get_task("arith", min_terms=5, max_terms=7, max_total=20)
    for row in t.generate("train", 200, seed=0):
        assert 5 <= row["n_terms"] == len(row["terms"]) <= 7
        assert parse_terms(row["prompt"]) == row["terms"]
        lines = extract_think(t.solution(row)).strip().splitlines()[1:]
        total = 0
        for line, d, label in zip(lines, row["terms"], "abcdefghij", strict=False):
            lhs, rhs = line.split(": ")[1].split("=")
            assert line.startswith(label + ": ")
            assert eval(lhs) == total + d == int(rhs)  # noqa: S307 - our own digits
            total += d
            assert 0 <= total <= 20
        assert str(total) == row["answer"]
    # forcing prefixes are what the solutions start with
    row = t.generate("test", 1, seed=0)[0]
    for style in t.styles:
        assert t.solution(row, style=style).startswith(t.style_prefix(style))


def test_arith_verify_is_exact():
    t = get_task("arith")
    row = t.generate("test", 1, seed=0)[0]
    good = row["answer"]
    assert t.verify(row, good) and t.verify(row, f" {good} ")
    assert not t.verify(row, str(int(good) + 1))
    assert not t.verify(row, None) and not t.verify(row, "") and not t.verify(row, "12abc")


@pytest.mark.parametrize(
    "name,params,match",
    [
        ("arith", {"max_terms": 0}, "min_terms"),
        ("arith", {"max_digit": 12}, "max_digit"),
        ("arith", {"terms": 3}, "unknown param"),
        ("countdown", {"max_numbers": 9}, "max_numbers"),
        ("linear", {"max_coef": 1}, "max_coef"),
    ],
)
def test_bad_params_are_config_errors(name, params, match):
    with pytest.raises(ConfigError, match=match):
        get_task(name, **params)


def test_too_few_distinct_problems_is_a_config_error():
    t = get_task("arith", min_terms=1, max_terms=1, max_digit=2, max_total=2)
    with pytest.raises(ConfigError, match="distinct|no train problem"):
        t.generate("train", 50, seed=0)


def test_countdown_verifier():
    t = get_task("countdown")
    row = {"numbers": [3, 7, 12, 5], "target": 44, "answer": "7 * 5 + 12 - 3"}
    assert t.verify(row, "7*5+12-3")
    assert t.verify(row, "(12 - 3) + 5 * 7 = 44")
    assert t.verify(row, "5 × 7 + 12 - 3")
    assert not t.verify(row, "44")  # numbers not used
    assert not t.verify(row, "7*5+12-3+0")  # extra number
    assert not t.verify(row, "7*5+12")  # missing number
    assert not t.verify(row, "7*5+12-3-1+1")
    assert not t.verify(row, "__import__('os')")
    assert not t.verify(row, "7**5")
    assert not t.verify(row, "7.0*5+12-3")
    assert evaluate_expression("1/0") is None
    assert evaluate_expression("(" * 300) is None


def test_countdown_numbers_used_exactly_once_in_reference():
    t = get_task("countdown", min_numbers=4, max_numbers=4)
    for row in t.generate("train", 100, seed=2):
        assert len(row["numbers"]) == 4 and 1 <= row["target"] <= 100
        value, used = evaluate_expression(row["answer"])
        assert value == row["target"] and sorted(used) == sorted(row["numbers"])


def test_linear_verifier_accepts_x_equals():
    t = get_task("linear")
    row = t.generate("test", 1, seed=0)[0]
    assert row["a"] * int(row["answer"]) + row["b"] == row["c"]
    assert t.verify(row, f"x = {row['answer']}")
    assert not t.verify(row, f"x = {int(row['answer']) + 1}")
