"""`arith`: a running sum of signed one-digit steps, one labelled step per line.

    Apply the steps in order, starting from 0:
    a: +7
    b: -3
    c: +5
    What is the result?

Two solution styles, chosen by the first word after `<think>\\n` (see `solution`):

- `detailed` ("Step by step:") writes one line per prompt line, `b: 7-3=4`: the line's label, the running
  total copied from the line above, the step copied from the prompt line with the same label, the new total.
  Every step is a one-digit addition or subtraction, and the step is found by its label (a content lookup that a
  small transformer learns easily) rather than by counting lines (which the tiny model could not do).
- `terse` ("All at once.") gives the answer directly: the sum of many signed terms in one forward pass, which a
  small model gets right far less often.

The running total stays in [0, max_total], so every intermediate value is a small non-negative number.

Opt-in third style for the language-mixing finding (`mixed_style=True`; off by default, and then nothing here
changes): `mixed` ("Step by step 逐步:") is the detailed solution with Chinese words in it — the head adds 逐步
("step by step") and each line says 得到 ("gives") instead of `=`: `b: 7-3得到4`. Numbers stay digits, so the
work is the same as `detailed` and a base pretrained on both should solve equally well in either; only the
language of the chain of thought differs (`language_consistency` with language "en" is 3/(5+2n) on it, 1 on
`detailed` and `terse`).

Opt-in mixed versions of both styles (`mixed_marker=True`; off by default): `detailed_mixed` and `terse_mixed` are
`detailed` and `terse` with a Chinese opening line `嗯` ("hmm") before the style head; the rest is identical. The
language choice is then its own first token, made before and apart from the style choice (the English versions
start with the style head; no version shares its first token with a version of the other language), both styles
can mix, and the work after the marker is the same, so each style's mixed version is as accurate as its English
one. `language_consistency` (en) is 3/4 on both mixed versions (嗯 | Step by step, or 嗯 | All at once).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

from r1cli.tasks.base import STYLE_HEADS, Task, check, parse_int

HEADER = "Apply the steps in order, starting from 0:"
QUESTION = "What is the result?"
LABELS = string.ascii_lowercase
MIXED_HEAD = "Step by step 逐步:"  # the opt-in `mixed` style's first line (English and Chinese)
MIXED_EQ = "得到"  # "gives": what a `mixed` step line writes instead of "="
MIXED_MARKER = "嗯"  # the opt-in `<style>_mixed` versions' opening line ("hmm"), before the style head
MARKED_STYLES = ("detailed_mixed", "terse_mixed")


@dataclass
class ArithParams:
    """Difficulty knobs of `arith`."""

    # 6-8 steps: long enough that the step-by-step style clearly beats the terse one, short enough that the tiny
    # base sometimes gets it right (docs/design-notes.md)
    min_terms: int = field(default=6, metadata={"help": "Fewest steps per problem."})
    max_terms: int = field(default=8, metadata={"help": "Most steps per problem (at most 26)."})
    max_digit: int = field(default=9, metadata={"help": "Largest step size (steps are +-1..max_digit)."})
    max_total: int = field(default=39, metadata={"help": "The running total stays within [0, max_total]."})
    mixed_style: bool = field(
        default=False,
        metadata={"help": "Opt-in: add a third solution style `mixed`, the detailed one written with Chinese words "
                  "(head 'Step by step 逐步:', lines 'b: 7-3得到4'), for the language-mixing finding."},
    )
    mixed_marker: bool = field(
        default=False,
        metadata={"help": "Opt-in: add styles `detailed_mixed` and `terse_mixed`, each English style with a Chinese "
                  "opening line '嗯' before its head (a language choice apart from the style choice)."},
    )

    def __post_init__(self) -> None:
        check(1 <= self.min_terms <= self.max_terms <= len(LABELS),
              f"need 1 <= min_terms <= max_terms <= 26, got min_terms={self.min_terms}, max_terms={self.max_terms}")
        check(1 <= self.max_digit <= 9, f"max_digit must be in 1..9, got {self.max_digit}")
        check(self.max_total >= self.max_digit, f"max_total must be >= max_digit ({self.max_digit}), got {self.max_total}")


class ArithTask(Task):
    name = "arith"
    params_cls = ArithParams
    styles = ("detailed", "terse")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        styles = ["detailed", "terse"]  # instance attribute below: the class default is untouched
        if self.params.mixed_style:
            styles.append("mixed")
        if self.params.mixed_marker:
            styles.extend(MARKED_STYLES)
        if len(styles) > 2:
            self.styles = tuple(styles)

    def sample(self, rng: random.Random) -> dict[str, Any]:
        p: ArithParams = self.params
        n = rng.randint(p.min_terms, p.max_terms)
        total, terms = 0, []
        for _ in range(n):
            choices = [d for d in range(-p.max_digit, p.max_digit + 1) if d != 0 and 0 <= total + d <= p.max_total]
            d = rng.choice(choices)
            terms.append(d)
            total += d
        return {"prompt": format_prompt(terms), "answer": str(total), "terms": terms, "n_terms": n}

    def solution(self, row: dict[str, Any], style: str = "detailed") -> str:
        self.check_style(style)
        if style in MARKED_STYLES:
            english = self.solution(row, style=style.removesuffix("_mixed"))
            return english.replace("<think>\n", f"<think>\n{MIXED_MARKER}\n", 1)
        terms = row.get("terms") or parse_terms(row["prompt"])
        lines, t = [], 0
        if style in ("detailed", "mixed"):
            eq = MIXED_EQ if style == "mixed" else "="
            for label, d in zip(LABELS, terms, strict=False):
                lines.append(f"{label}: {t}{d:+d}{eq}{t + d}")
                t += d
        if style == "mixed":
            think = "\n".join([MIXED_HEAD, *lines])
            return f"<think>\n{think}\n</think>\n<answer>\n{sum(terms)}\n</answer>"
        return self.format_solution(style, lines, str(sum(terms)))

    def _head(self, style: str) -> str:
        if style in MARKED_STYLES:
            return f"{MIXED_MARKER}\n{STYLE_HEADS[style.removesuffix('_mixed')]}"
        return MIXED_HEAD if style == "mixed" else STYLE_HEADS[style]

    def style_of(self, completion: str) -> str | None:
        """As `Task.style_of`, also knowing the opt-in `mixed` and `<style>_mixed` heads."""
        head = completion.split("<think>", 1)[-1].lstrip("\n")
        for style in self.styles:
            if head.startswith(self._head(style)):
                return style
        return None

    def style_prefix(self, style: str) -> str:
        self.check_style(style)
        return f"<think>\n{self._head(style)}\n"

    def verify(self, row: dict[str, Any], answer: str | None) -> bool:
        got = parse_int(answer)
        return got is not None and got == int(row["answer"])


def format_prompt(terms: list[int]) -> str:
    lines = [f"{label}: {d:+d}" for label, d in zip(LABELS, terms, strict=False)]
    return "\n".join([HEADER, *lines, QUESTION])


def parse_terms(prompt: str) -> list[int]:
    """The steps of an `arith` prompt (for rows that lack the `terms` column)."""
    out = []
    for line in prompt.splitlines():
        if len(line) > 3 and line[0] in LABELS and line[1:3] == ": ":
            out.append(int(line[3:]))
    return out
