"""Language consistency: script share + sentence-level lingua, LaTeX stripped, deterministic."""

from __future__ import annotations

import time

import pytest

from r1cli.rewards import get_reward
from r1cli.rewards.language import chain_of_thought, strip_latex, target_share, words

L6 = ["en", "zh", "fr", "de", "es", "ru"]
EN = (
    "We have that $r = \\sqrt{0^2 + 3^2} = 3.$ Also, if we draw the line connecting the origin and $(0,3),$ this "
    "line makes an angle of $\\frac{\\pi}{2}$ with the positive $x$-axis. Therefore the polar coordinates are "
    "found and we are done."
)
FR = "Nous avons que la droite passe par l'origine. Donc l'angle est droit et les coordonnées sont trouvées."
ZH = "我们首先计算两个数的和，然后得到结果。所以答案是五。"
EN_ZH = "We first compute the sum of the two numbers. 然后我们得到结果，所以答案是五。"
EN_FR = (
    "We first compute the sum of the two numbers and then we check it. Ensuite nous vérifions le résultat avec "
    "soin. Finally we write the answer in a box."
)


def test_strip_latex_and_words():
    assert "sqrt" not in strip_latex(EN) and "frac" not in strip_latex(EN)
    assert strip_latex("a $x$ b \\[y\\] c \\(z\\) d \\begin{align}w\\end{align} e").split() == list("abcde")
    assert [w for w, _ in words("我们 the x cat")] == [
        "我",
        "们",
        "the",
        "cat",
    ]  # CJK per char; 1-letter dropped
    t0 = time.perf_counter()
    strip_latex("$" * 500_000 + "\\begin{x}" * 50_000 + "\\(" * 50_000)  # unclosed delimiters: still linear
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize(
    "text,target,lo,hi",
    [
        (EN, "en", 1.0, 1.0),
        (FR, "en", 0.0, 0.0),
        (FR, "fr", 1.0, 1.0),
        (ZH, "zh", 1.0, 1.0),
        (ZH, "en", 0.0, 0.0),
        (EN_ZH, "en", 0.3, 0.7),
        (EN_ZH, "zh", 0.3, 0.7),
        (EN_FR, "en", 0.6, 0.9),
    ],
)
def test_target_share(text, target, lo, hi):
    share = target_share(text, target, L6)
    assert lo <= share <= hi


def test_nothing_to_judge_is_none():
    assert target_share("$x^2 + 1 = 0$ so $x = \\pm i$.", "en", L6) is None
    assert target_share("", "en", L6) is None


def test_reward_uses_only_the_chain_of_thought_and_is_deterministic():
    fn = get_reward("language_consistency", language="en")
    comp = f"<think>\n{EN}\n</think>\n{FR}"
    assert chain_of_thought(comp).strip() == EN
    assert fn([comp, comp]) == [1.0, 1.0]
    assert fn([f"<think>\n{EN_FR}\n</think>\nok"]) == fn([f"<think>\n{EN_FR}\n</think>\nok"])


def test_per_row_target_language_column():
    fn = get_reward("language_consistency", language="en", language_column="lang")
    assert fn([f"<think>{ZH}</think>", f"<think>{ZH}</think>"], lang=["zh", "en"]) == [1.0, 0.0]


def test_megabyte_cot_is_bounded():
    fn = get_reward("language_consistency")
    t0 = time.perf_counter()
    (share,) = fn(["<think>" + "We compute the value of the sum. " * 30_000 + "</think>"])
    assert share == 1.0 and time.perf_counter() - t0 < 5.0
