"""The grading engine: math-verify equivalence, extraction rules, time bounds, worker failure, clustering."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from r1cli.grading import engine
from r1cli.grading.answers import extract_answer, is_canonical_int, normalize_gold, parse_inputs
from r1cli.rewards import get_reward

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
ITEM_BOUND_S = 3.5  # "a pathological item costs at most ~2 s" (+ margin for a loaded 2-core machine)


@pytest.fixture(scope="module", autouse=True)
def warm_pool():
    engine.grade(
        ["1"], ["\\frac{2}{2}"]
    )  # start the shared pool once (forkserver start-up is not an item cost)
    yield


def test_equivalent_forms_and_none_for_missing():
    preds = ["\\frac12", "0.5", "1/2", "\\dfrac{1}{2}", "3", None, "", "x = \\frac{1}{2}"]
    assert engine.grade(preds, ["\\frac{1}{2}"] * len(preds)) == [
        True,
        True,
        True,
        True,
        False,
        False,
        False,
        True,
    ]


@pytest.mark.parametrize(
    "gold,pred,ok",
    [
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", True),
        ("[2,5)", "[2, 5)", True),
        ("[2,5)", "(2, 5)", False),
        ("\\{1,2\\}", "2, 1", True),
        ("3\\sqrt{2}", "\\sqrt{18}", True),
        ("70000", "70,000", True),
        ("18", "\\$18", True),
        ("5\\%", "5", True),
        ("\\text{(C)}", "C", True),
        (
            "\\begin{pmatrix} -1/3 \\\\ 2/3 \\end{pmatrix}",
            "\\begin{pmatrix} -\\frac13 \\\\ \\frac23 \\end{pmatrix}",
            True,
        ),
        ("x^2+1", "1+x^2", True),
        ("1000000", "1000001", False),
        ("42", "-42", False),
    ],
)
def test_math_verify_semantics(gold, pred, ok):
    assert engine.grade([pred], [gold]) == [ok]


def test_unparseable_gold_is_none_and_full_solution_gold_goes_through_math_verify():
    assert engine.grade(["2", None], [None, ""]) == [None, None]
    assert normalize_gold(" so the answer is $\\boxed{\\frac{1}{2}}$. ") == "so the answer is $\\boxed{\\frac{1}{2}}$."
    assert engine.grade(["0.5"], ["so the answer is $\\boxed{\\frac{1}{2}}$."]) == [True]
    # no box: math-verify's own extraction finds the stated answer
    no_box = "Thus $x = 1/5$. Final Answer: The final answer is $20\\%$. I hope it is correct."
    assert engine.grade(["20\\%", "1/5", "21\\%"], [no_box] * 3) == [True, True, False]
    # several boxes: the gold has several values, so a multi-part answer is right and one part alone is not
    two = "so \\(\\boxed{1}\\) and \\(\\boxed{-2}\\)."
    assert engine.grade(["\\boxed{-2}, \\boxed{1}", "-2, 1", "1"], [two] * 3) == [True, True, False]


def test_canonical_int_shortcut_agrees_with_math_verify():
    from math_verify import parse, verify

    def readings(s):
        return [x for i in parse_inputs(s) for x in parse(i)]

    pairs = [("7", "7"), ("7", "8"), ("-7", "7"), ("0", "0"), ("123456789012345", "123456789012346")]
    for g, p in pairs:
        assert is_canonical_int(g) and is_canonical_int(p)
        assert engine.grade([p], [g]) == [verify(readings(g), readings(p))]
    assert not is_canonical_int("007") and not is_canonical_int("-0") and not is_canonical_int("1" * 16)


def test_gold_parsed_once_per_distinct_gold():
    golds = ["\\frac{3}{7}"] * 16 + ["\\sqrt{2}/2"] * 16
    preds = ["3/7", "0.4285714", "\\frac{6}{14}", "1/2"] * 4 + [
        "\\frac{\\sqrt2}{2}",
        "0.7071068",
        "1",
        "2",
    ] * 4
    out = engine.grade(preds, golds)
    stats = engine.last_stats
    assert stats.golds == 2  # one parse task per distinct gold
    assert stats.compared == 8  # distinct (gold, prediction) pairs
    assert out[:4] == [True, True, True, False] and out[16:20] == [True, True, False, False]


def test_grade_completions_extraction_rules():
    golds = ["4"] * 6
    comps = [
        "<think>\n2+2\n</think>\n<answer>\n4\n</answer>",
        "<think>2+2</think>\nThe answer is $\\boxed{4}$.",
        [{"role": "assistant", "content": "<think>2+2</think> \\boxed{4}"}],  # TRL conversational form
        "<think>so \\boxed{4}</think> I am not sure.",  # only inside the think block
        "<think>\n\\boxed{4}",  # unclosed think block
        "The answer is \\boxed{3} or \\boxed{4}.",  # hedging
    ]
    assert engine.grade_completions(comps, golds) == [True, True, True, False, False, False]


# --- at least 30 adversarial completions, each graded within its time bound ----------------------------------
NOISE = "\u202e\u200b\U0001f600\u0000\ufffd" * 2000
ADVERSARIAL: list[tuple[str, object, float | None]] = [
    # (name, completion, expected accuracy reward or None = any value in {0, 1})
    ("1MB junk", "a" * 1_000_000, 0.0),
    ("1MB junk then answer", "b" * 1_000_000 + " \\boxed{2}", 1.0),
    ("1MB of open boxes", "\\boxed{" * 150_000, 0.0),
    ("10k nested braces", "\\boxed{" + "{" * 10_000 + "2" + "}" * 10_000 + "}", 0.0),
    ("400 nested braces", "\\boxed{" + "{" * 400 + "2" + "}" * 400 + "}", None),
    ("unbalanced 10k braces", "\\boxed{" + "{" * 10_000 + "2", 0.0),
    ("thousands of distinct boxes", "".join(f"\\boxed{{{i}}} " for i in range(5000)), 0.0),
    ("thousands of the same box", "\\boxed{2} " * 5000, 1.0),
    ("hedge two boxes", "The answer is \\boxed{1} or \\boxed{2}.", 0.0),
    ("hedge in answer tag", "<think>\nx\n</think>\n<answer>\n\\boxed{1} \\boxed{2}\n</answer>", 0.0),
    ("hedge answer tags", "<think>\nx\n</think>\n<answer>1</answer>\n<answer>2</answer>", 0.0),
    ("hedge words", "<think>\nx\n</think>\n<answer>\n1 or 2\n</answer>", 0.0),
    ("hedge list", "<think>\nx\n</think>\n<answer>\n1, 2\n</answer>", 0.0),
    ("hedge text box", "\\boxed{2} \\boxed{\\text{2 or 3}}", 0.0),
    ("answer only in think", "<think>\nthe answer is \\boxed{2}\n</think>\nI do not know.", 0.0),
    ("answer tag only in think", "<think>\n<answer>2</answer>\n</think>\nno idea", 0.0),
    ("unclosed think", "<think>\nwe get \\boxed{2}", 0.0),
    ("empty", "", 0.0),
    ("whitespace", " \n\t " * 1000, 0.0),
    ("unicode noise", NOISE, 0.0),
    ("unicode noise in box", "\\boxed{" + NOISE[:500] + "}", 0.0),
    ("null bytes", "\x00" * 10_000 + "\\boxed{2\x00}", None),
    ("power tower", "\\boxed{9^{9^{9^{9}}}}", 0.0),
    ("huge power", "\\boxed{10^{1000000000}}", 0.0),
    ("huge factorial", "\\boxed{(10^{9})!}", 0.0),
    ("900 digits", "\\boxed{" + "9" * 900 + "}", 0.0),
    ("deep fractions", "\\boxed{" + "\\frac{" * 80 + "2" + "}{1}" * 80 + "}", None),
    ("unbalanced environment", "\\boxed{\\begin{matrix} 2", 0.0),
    ("empty box", "\\boxed{}", 0.0),
    ("symbol", "\\boxed{x}", 0.0),
    ("infinity", "\\boxed{\\infty}", 0.0),
    ("many think closes", "</think>" * 10_000 + "\\boxed{2}", 1.0),
    ("dollar flood", "$" * 100_000 + "\\boxed{2}", 1.0),
    ("control: boxed", "<think>\nok\n</think>\n\\boxed{2}", 1.0),
    ("control: equivalent", "<think>\nok\n</think>\n<answer>\n\\frac{4}{2}\n</answer>", 1.0),
]


def test_at_least_30_adversarial_completions():
    assert len(ADVERSARIAL) >= 30


@pytest.mark.parametrize("name,completion,expected", ADVERSARIAL, ids=[a[0] for a in ADVERSARIAL])
def test_adversarial_completion_graded_within_bound(name, completion, expected):
    accuracy = get_reward("accuracy")
    t0 = time.perf_counter()
    (score,) = accuracy([completion], answer=["2"])
    elapsed = time.perf_counter() - t0
    assert elapsed < ITEM_BOUND_S, f"{name}: {elapsed:.2f}s"
    assert score in (0.0, 1.0)
    if expected is not None:
        assert score == expected, name


def test_batch_with_pathological_items_stays_bounded():
    comps = [c for _, c, _ in ADVERSARIAL[:25]] + ["\\boxed{2}"] * 20
    t0 = time.perf_counter()
    out = engine.grade_completions(comps, ["2"] * len(comps))
    assert time.perf_counter() - t0 < 2 * ITEM_BOUND_S
    assert out[-20:] == [True] * 20


def test_overrunning_worker_is_killed_and_replaced():
    """A unit that overruns its deadline kills the worker; its gold scores None, and the pool keeps working."""
    pool = engine.GradingPool(n_workers=1)
    try:
        t0 = time.perf_counter()
        out = engine.grade(
            ["\\frac{1}{2}", "0.25"], ["\\sqrt{1/4}", "\\sqrt{1/16}"], timeout_s=0.001, pool=pool
        )
        assert time.perf_counter() - t0 < ITEM_BOUND_S
        assert out == [None, None] and pool.kills >= 1
        pid_before = [w.proc.pid for w in pool.workers]
        assert all(w.proc.is_alive() for w in pool.workers)
        assert engine.grade(["\\frac{1}{2}", "0.25"], ["\\sqrt{1/4}", "\\sqrt{1/16}"], pool=pool) == [
            True,
            True,
        ]
        assert [w.proc.pid for w in pool.workers] == pid_before
    finally:
        pool.close()


def test_dead_worker_is_replaced():
    pool = engine.GradingPool(n_workers=1)
    try:
        engine.grade(["0.5"], ["1/2"], pool=pool)
        pool.workers[0].proc.kill()
        pool.workers[0].proc.join()
        assert engine.grade(["0.5", "2"], ["1/2", "\\frac{6}{3}"], pool=pool) == [True, True]
    finally:
        pool.close()


def test_cluster_answers_and_equivalence():
    assert engine.cluster_answers(["\\frac12", "0.5", "1/2", "3", None, "3.0", "x"]) == [
        0,
        0,
        0,
        1,
        None,
        1,
        2,
    ]
    assert engine.cluster_answers(["7", "7", "8", None]) == [0, 0, 1, None]
    assert engine.answers_equivalent("\\frac{1}{2}", "0.5")
    assert not engine.answers_equivalent("\\frac{1}{2}", "0.6")
    assert not engine.answers_equivalent(None, "1")
    assert engine.majority_answer(["1/2", "3", "0.5", "3", "\\frac12"]) == "1/2"
    many = engine.cluster_answers_many([["1", "1.0"], ["2", "3"], []])
    assert many == [[0, 0], [0, 1], []]


def test_extract_answer_rules():
    assert extract_answer("<think>\nx\n</think>\n<answer>\n 4 \n</answer>") == "4"
    assert (
        extract_answer("<think>x</think> so \\boxed{4} and again \\boxed{ 4}") == "4"
    )  # same box twice: fine
    assert extract_answer("\\boxed{" + "9" * 2000 + "}") is None  # absurdly long
    assert extract_answer(None) is None


@pytest.mark.skipif(not (DATA / "math500.jsonl").exists(), reason="shared benchmark data not present")
def test_oracle_math500_and_gsm8k_subset():
    from r1cli.grading.answers import last_boxed

    rows = [json.loads(x) for x in (DATA / "math500.jsonl").read_text().splitlines()[:150]]
    v = engine.grade([last_boxed(r["solution"]) for r in rows], [r["answer"] for r in rows])
    assert sum(x is True for x in v) / len(v) >= 0.99
    rows = [json.loads(x) for x in (DATA / "gsm8k_test.jsonl").read_text().splitlines()[:300]]
    finals = [r["solution"].rsplit("####", 1)[1].strip() for r in rows]
    assert all(engine.grade(finals, [r["answer"] for r in rows]))


def test_forked_child_gets_its_own_pool():
    pool = engine.get_pool()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            child_pool = engine.get_pool()
            code = 0 if child_pool is not pool and engine.grade(["0.5"], ["1/2"]) == [True] else 1
            engine.shutdown()
        except BaseException:  # noqa: BLE001
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert engine.grade(["0.5"], ["1/2"]) == [True]


def test_require_think_for_prefilled_templates():
    truncated = "Let me think... maybe \\boxed{4} but wait"  # `<think>` was in the prompt; never closed
    assert engine.grade_completions([truncated], ["4"]) == [True]
    assert engine.grade_completions([truncated], ["4"], require_think=True) == [False]
    assert get_reward("accuracy", require_think=True)(
        ["ok</think> \\boxed{4}", truncated], answer=["4", "4"]
    ) == [
        1.0,
        0.0,
    ]
