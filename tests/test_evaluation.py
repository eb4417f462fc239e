"""pass@k, cons@k (majority vote over math-equivalence clusters, ties) and the summary with intervals."""

from __future__ import annotations

import itertools
import math

import pytest

from r1cli.evaluation import (
    ProblemResult,
    bootstrap_ci,
    cons_correct,
    majority_cluster,
    mean_se,
    pass_at_k,
    summarize,
)


@pytest.mark.parametrize(
    "n,c,k,want",
    [
        (4, 0, 1, 0.0),
        (4, 4, 1, 1.0),
        (4, 1, 1, 0.25),
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 3, 0.9),  # 1 - C(3,3)/C(5,3) = 1 - 1/10
        (10, 3, 5, 1 - math.comb(7, 5) / math.comb(10, 5)),
        (4, 3, 2, 1.0),  # n - c < k: every k-subset holds a correct sample
    ],
)
def test_pass_at_k_hand_values(n, c, k, want):
    assert pass_at_k(n, c, k) == pytest.approx(want, abs=1e-12)


def test_pass_at_k_equals_subset_enumeration():
    for n in range(1, 8):
        for c in range(n + 1):
            for k in range(1, n + 1):
                samples = [True] * c + [False] * (n - c)
                subsets = list(itertools.combinations(samples, k))
                brute = sum(any(s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_rejects_bad_input():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_majority_cluster_ties_go_to_the_earliest_cluster():
    # clusters 1 and 0 both have two votes; cluster 1's first member (sample 0) comes first
    assert majority_cluster([1, 0, 0, 1]) == 0
    assert majority_cluster([0, 1, 1, 0]) == 0
    assert majority_cluster([2, 1, 1]) == 1  # a clear majority beats order
    assert majority_cluster([None, None, 5]) == 2  # samples without an answer do not vote
    assert majority_cluster([None, None]) is None
    assert cons_correct([None, None], [False, False]) is False
    # the vote is judged by the winning cluster's first member
    assert cons_correct([0, 1, 1, 0, 2], [True, False, False, True, False]) is True
    assert cons_correct([1, 0, 0, 2], [False, True, True, False]) is True


def test_cons_at_k_votes_by_math_equivalence_not_strings():
    """\\frac12, 0.5 and 1/2 vote together (3 votes) and beat the string majority '3' (2 votes)."""
    from r1cli.grading.engine import cluster_answers, grade

    answers = ["3", "\\frac12", "3", "0.5", "1/2"]
    clusters = cluster_answers(answers)
    assert clusters[1] == clusters[3] == clusters[4] != clusters[0] == clusters[2]
    correct = [bool(v) for v in grade(answers, ["1/2"] * 5)]
    assert correct == [False, True, False, True, True]
    assert cons_correct(clusters, correct) is True
    # a 2-2 tie between {3} and {1/2, 0.5}: '3' was seen first, so the vote is wrong
    tie = ["3", "\\frac{1}{2}", "3", "0.5"]
    ct = cluster_answers(tie)
    assert cons_correct(ct, [bool(v) for v in grade(tie, ["1/2"] * 4)]) is False
    # the same answers in another order: now the fraction comes first and wins the tie
    tie2 = ["0.5", "3", "\\frac{1}{2}", "3"]
    assert cons_correct(cluster_answers(tie2), [bool(v) for v in grade(tie2, ["1/2"] * 4)]) is True


def test_summarize_hand_computed():
    probs = [
        ProblemResult([True, True, False, False], [0, 0, 1, 1], [1, 1, 1, 0], [10, 20, 30, 40],
                      ["stop", "stop", "stop", "length"]),  # tie 2-2: cluster 0 first -> correct
        ProblemResult([False, False, False, True], [0, 0, 1, 2], [1, 1, 1, 1], [5, 5, 5, 5], ["stop"] * 4),
        ProblemResult([True, True, True, True], [0, 0, 0, 0], [0, 0, 0, 0], [8, 8, 8, 8], ["stop"] * 4),
    ]
    m = summarize(probs, seed=0)
    assert m["n_problems"] == 3 and m["k"] == 4
    assert m["pass@1"] == pytest.approx((0.5 + 0.25 + 1.0) / 3)
    assert m["pass@k"] == pytest.approx(1.0) and m["pass@4"] == m["pass@k"]
    assert m["cons@k"] == pytest.approx(2 / 3) and m["cons@4"] == m["cons@k"]
    assert m["format_rate"] == pytest.approx((0.75 + 1.0 + 0.0) / 3)
    assert m["truncation_rate"] == pytest.approx((0.25 + 0 + 0) / 3)
    assert m["mean_length"] == pytest.approx((25 + 5 + 8) / 3)
    assert m["median_length"] == pytest.approx(8.0)
    _, se = mean_se([0.5, 0.25, 1.0])
    assert m["ci"]["pass@1"]["se"] == pytest.approx(se)
    lo, hi = m["ci"]["pass@1"]["ci95"]
    assert 0.25 <= lo <= m["pass@1"] <= hi <= 1.0
    assert summarize(probs, seed=0)["ci"] == m["ci"]  # seeded bootstrap: deterministic


def test_mean_se_and_bootstrap():
    m, se = mean_se([0, 1, 0, 1])
    assert m == 0.5 and se == pytest.approx(math.sqrt((4 * 0.25 / 3) / 4))
    assert mean_se([1.0]) == (1.0, 0.0)
    lo, hi = bootstrap_ci([0.0] * 50 + [1.0] * 50, n_boot=2000, seed=1)
    assert 0.38 < lo < 0.5 < hi < 0.62  # ~ 0.5 ± 1.96 * 0.05
    assert bootstrap_ci([3.0, 3.0, 3.0]) == (3.0, 3.0)


def test_summarize_rejects_ragged_input():
    with pytest.raises(ValueError):
        summarize([ProblemResult([True], [0]), ProblemResult([True, False], [0, 1])])
    with pytest.raises(ValueError):
        summarize([])
