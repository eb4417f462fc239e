"""The accuracy reward against math-verify's own test expectations, and its anti-hacking rules.

tests/data/math_verify_cases.jsonl holds the (gold, prediction, expected) cases of math-verify 0.9.0's test suite
(github.com/huggingface/Math-Verify `tests/`, as shipped in its source distribution; `source` names the file and
pytest id of each; bench/build_math_verify_cases.py rebuilds the file). The reward grades each prediction as the
answer of an R1-shaped completion, `<think>…</think><answer>PRED</answer>`. A few cases expect non-default `verify`
options (`options` in the file: float precision, non-strict variables, set/relation comparison) that contradict
their default-option twins, so full agreement is out of reach by design.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from r1cli.grading import engine
from r1cli.rewards import get_reward

CASES = Path(__file__).resolve().parents[1] / "data" / "math_verify_cases.jsonl"
ITEM_BOUND_S = 3.5  # the reward's ~2 s per pathological item, with a margin for a loaded 2-core machine


def r1(answer: str) -> str:
    return f"<think>\nLet me work it out.\n</think>\n<answer>\n{answer}\n</answer>"


@pytest.fixture(scope="module", autouse=True)
def warm_pool():
    engine.grade(["1/2"], ["0.5"])  # start the shared pool once (forkserver start-up is not an item cost)
    yield


def test_agrees_with_math_verify_test_expectations_in_r1_shape():
    rows = [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]
    assert len(rows) >= 250 and all(r["source"].startswith("huggingface/Math-Verify@") for r in rows)
    # a larger time budget than the default: this measures what the reward decides, not how a loaded machine
    # copes with the 1 s comparison timeout (bounded time is tested below and in test_grading.py)
    accuracy = get_reward("accuracy", timeout_s=8.0)
    t0 = time.perf_counter()
    scores = accuracy([r1(r["pred"]) for r in rows], answer=[r["gold"] for r in rows])
    elapsed = time.perf_counter() - t0
    misses = [(r, s) for r, s in zip(rows, scores, strict=True) if (s == 1.0) != bool(r["expected"])]
    agreement = 1 - len(misses) / len(rows)
    listing = "\n".join(
        f"  {r['source']}: expected {r['expected']}, reward {s}, options {r.get('options', {})}\n"
        f"    gold {r['gold'][:100]!r}\n    pred {r['pred'][:100]!r}"
        for r, s in misses
    )
    assert agreement >= 0.97, f"agreement {agreement:.3f} on {len(rows)} cases; disagreeing:\n{listing}"
    assert elapsed < 30, f"{elapsed:.1f}s"


# --- anti-hacking ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "completion",
    [
        "<think>\nSo the answer is \\boxed{5}.\n</think>\nI am not sure.",
        "<think>\n<answer>5</answer>\n</think>\nNo idea.",
        "<think>\nTherefore $x = 5$ is the solution.\n</think>\n",
        "<think>\nThe final answer is $5$. I hope it is correct.\n</think>\n<answer>\nI do not know\n</answer>",
        "<think>\nso \\boxed{5}",  # never closed: all of it is reasoning
    ],
)
def test_answer_only_inside_think_scores_zero(completion):
    accuracy = get_reward("accuracy")
    assert accuracy([completion, r1("5")], answer=["5", "5"]) == [0.0, 1.0]


def test_boxes_are_one_multi_part_answer_only_for_a_gold_with_several_values():
    accuracy = get_reward("accuracy")
    hedge = r1("\\boxed{1} \\text{ or } \\boxed{2}")
    assert accuracy([hedge] * 4, answer=["1", "2", "\\{1, 2\\}", "\\{1, 3\\}"]) == [0.0, 0.0, 1.0, 0.0]
    parts = [r1("\\boxed{1},\\boxed{2},\\boxed{3}"), r1("\\boxed{(2, 2)} \\text{ and } \\boxed{(6, 2)}")]
    assert accuracy(parts, answer=["\\{1,2,3\\}", "(2, 2), (6, 2)"]) == [1.0, 1.0]
    # the same hedge after </think> without answer tags (R1's chat shape)
    chat = "<think>\nhmm\n</think>\nIt is $\\boxed{1}$ or maybe $\\boxed{2}$."
    assert accuracy([chat, chat], answer=["1", "2"]) == [0.0, 0.0]


@pytest.mark.parametrize(
    "answer",
    ["1 or 2", "1, 2", "It is 1, or maybe 2.", "The answer is $1$ or $2$.", "x = 1 or x = 2", "$1$ and $2$"],
)
def test_alternatives_in_words_score_zero_for_a_single_valued_gold(answer):
    accuracy = get_reward("accuracy")
    assert accuracy([r1(answer)] * 2, answer=["1", "2"]) == [0.0, 0.0]


def test_a_bare_number_is_one_value_in_either_locale():
    accuracy = get_reward("accuracy")
    # `1,5` is 1.5 with a decimal comma, or the list {1, 5}: either reading, never the single values 1 or 5
    got = accuracy(
        [r1("1,5")] * 4 + [r1("1 000"), r1("1000,99")],
        answer=["1.5", "\\{1, 5\\}", "1", "5", "1000", "1000.99"],
    )
    assert got == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]


def test_answers_in_words_and_full_solution_golds_read_as_math_verify_reads_them():
    accuracy = get_reward("accuracy")
    preds = [
        "Therefore $x \\geq 5$ is the solution.",
        "The identity matrix is $ \\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix} $.",
        "83 boxes in all",
        "A: 260",
        "Answer: x^2+1",
    ]
    golds = ["x \\ge 5", "\\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix}", "83", "260", "1 + x^2"]
    assert accuracy([r1(p) for p in preds], answer=golds) == [1.0] * 5
    # bare LaTeX is never searched for a stray number: `x^2+1` is not 3
    assert accuracy([r1("x^2+1"), r1("Answer: x^2+1")], answer=["3", "3"]) == [0.0, 0.0]
    solution = "Thus $n = \\boxed{1}$ or $n = \\boxed{-2}$, so the solutions are $\\boxed{1,-2}$."
    assert accuracy([r1("-2, 1"), r1("1")], answer=[solution, solution]) == [1.0, 0.0]


def _answer(x: str) -> str:
    return "<think>\nx\n</think>\n<answer>\n" + x + "\n</answer>"


LONG_OR_UNBALANCED = [
    ("inline dollar pairs", _answer("$x" * 8000)),
    ("1MB of dollars", _answer("$" * 1_000_000)),
    ("open boxes", _answer("\\boxed{" * 2000)),
    ("open boxes in math", _answer("$\\boxed{" * 1500)),
    ("open display brackets", _answer("\\[" * 5000 + "2")),
    ("open parentheses delimiters", _answer("\\(" * 5000 + "2")),
    ("deep fractions in math", _answer("$" + "\\frac{" * 500 + "2" + "}{1}" * 500 + "$")),
    ("equation chain", _answer("$" + "x=" * 5000 + "2$")),
    ("deep parentheses, bare", _answer("(" * 10_000 + "2")),
    ("answer anchors", _answer("answer: " * 1900 + "2")),
    ("final-answer anchors", _answer("The final answer is " * 700 + "$2$")),
    ("thousands of inline maths", _answer(" ".join(f"${i}$" for i in range(3000)))),
    ("thousands of alternatives", _answer("1 or 2 " * 2000)),
    ("thousand separators", _answer("1" + ",000" * 3000)),
]


@pytest.mark.parametrize("name,completion", LONG_OR_UNBALANCED, ids=[n for n, _ in LONG_OR_UNBALANCED])
def test_long_or_unbalanced_answer_regions_are_bounded_in_time(name, completion):
    accuracy = get_reward("accuracy")
    t0 = time.perf_counter()
    (score,) = accuracy([completion], answer=["2"])
    assert time.perf_counter() - t0 < ITEM_BOUND_S, name
    assert score in (0.0, 1.0)
