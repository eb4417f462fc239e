"""Format, tag count, length, repetition and reasoning-step rewards."""

from __future__ import annotations

import math
import time

import pytest

from r1cli.rewards import get_reward
from r1cli.rewards.format import is_chat_format, is_r1_zero_format, tag_score

ZERO = "<think>\nadd them\n</think>\n<answer>\n4\n</answer>"
CHAT = "<think>\nadd them\n</think>\nThe sum is $\\boxed{4}$."
CHAT_PREFILLED = "add them\n</think>\nThe sum is $\\boxed{4}$."


@pytest.mark.parametrize(
    "text,zero,chat",
    [
        (ZERO, True, False),
        (ZERO + "\n\n", True, False),
        (CHAT, False, True),
        (CHAT_PREFILLED, False, True),
        ("<think>\n\n</think>\n<answer>\n4\n</answer>", False, False),  # empty reasoning
        ("<think>\nx\n</think>\n<answer>\n\n</answer>", False, False),  # empty answer
        ("hi " + ZERO, False, False),  # text before the shape
        (ZERO + " bye", False, False),  # text after the shape
        (
            "<think>\na\n</think>\n<think>\nb\n</think>\n<answer>\n4\n</answer>",
            False,
            False,
        ),  # two think blocks
        ("<think>\na\n</think>\n<answer>\n4\n</answer>\n<answer>\n5\n</answer>", False, False),
        ("<think>a</think>The sum is 4.", False, False),  # chat shape without a box
        ("<think>a</think>", False, False),
        ("x <think>a</think> \\boxed{4}", False, False),  # <think> not at the start
        ("<think>a</think><think>b</think> \\boxed{4}", False, False),
        ("", False, False),
    ],
)
def test_format_shapes(text, zero, chat):
    assert is_r1_zero_format(text) is zero
    assert is_chat_format(text) is chat


def test_format_reward_styles():
    comps = [ZERO, CHAT, "4"]
    assert get_reward("format")(comps) == [1.0, 1.0, 0.0]
    assert get_reward("format", style="r1-zero")(comps) == [1.0, 0.0, 0.0]
    assert get_reward("format", style="chat")(comps) == [0.0, 1.0, 0.0]


def test_tag_count_partial_credit_needs_placement():
    assert tag_score(ZERO) == 1.0
    assert tag_score("<think>\nx\n</think>\nno answer tags") == 0.5
    assert tag_score("<think>\nx") == 0.25
    assert tag_score("</answer>\n<answer>\n</think>\n<think>\n") == 0.0  # all four tags, wrong order
    assert tag_score("") == 0.0
    assert get_reward("tag_count")([ZERO, ""]) == [1.0, 0.0]


def test_soft_overlong_matches_dapo():
    fn = get_reward("soft_overlong", max_length=100, buffer=20)
    ids = [[0] * n for n in (10, 80, 81, 90, 100, 101, 500)]
    assert fn(["-"] * len(ids), completion_ids=ids) == [0.0, 0.0, -0.05, -0.5, -1.0, -1.0, -1.0]
    with pytest.raises(ValueError, match="completion_ids"):
        fn(["abc"])
    assert get_reward("soft_overlong", max_length=4, buffer=2, unit="words")(["a b c"]) == [-0.5]


def test_cosine_length_rewards_short_correct_and_long_wrong():
    fn = get_reward("cosine_length", max_length=100, unit="chars")
    short_ok, long_ok = "\\boxed{2}", "x" * 91 + "\\boxed{2}"
    short_bad, long_bad = "\\boxed{3}", "x" * 91 + "\\boxed{3}"
    r = fn([short_ok, long_ok, short_bad, long_bad, "\\boxed{2}"], answer=["2", "2", "2", "2", ""])
    assert r[0] > r[1] >= 0.5 and r[1] == pytest.approx(0.5)
    assert r[2] < r[3] < 0 and r[3] == pytest.approx(-0.5)
    assert r[0] == pytest.approx(0.5 + 0.25 * (1 + math.cos(math.pi * 9 / 100)))
    assert r[4] is None


def test_repetition_penalty():
    fn = get_reward("repetition", ngram_size=2, max_penalty=-1.0)
    assert fn(["a b c d", "a b a b a b", "", "word"]) == [0.0, -0.6, 0.0, 0.0]
    loop = "the same words again " * 2000
    t0 = time.perf_counter()
    (p,) = get_reward("repetition")([loop])
    assert p < -0.99 and time.perf_counter() - t0 < 1.0


def test_reasoning_steps():
    fn = get_reward("reasoning_steps", target=3)
    text = "<think>\nStep 1: add.\nStep 2: halve.\n</think>\nStep 3: done \\boxed{2}"
    assert fn([text]) == [pytest.approx(2 / 3)]  # only the reasoning counts
    assert fn(["First, add. Next, halve. Finally, check.", "1. a\n2. b\n- c\n* d", "Plain."]) == [
        1.0,
        1.0,
        0.0,
    ]


def test_shaping_rewards_are_linear_on_a_megabyte():
    big = "<think>\n" + ("a{b}c " * 200_000) + "\n</think>\n" + "\\boxed{" * 20_000
    for name in ("format", "tag_count", "repetition", "reasoning_steps"):
        t0 = time.perf_counter()
        get_reward(name)([big])
        assert time.perf_counter() - t0 < 2.0, name
