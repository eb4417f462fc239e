"""`format` and `tag_count`: rewards for the shape of a completion, not its content.

`format` (1.0 / 0.0) accepts one of two shapes (param `style`):
- `r1-zero`: exactly `<think>\\n…\\n</think>\\n<answer>\\n…\\n</answer>` (paper Table 1; the shape open-r1's strict
  format reward checks), both parts non-empty, nothing before `<think>` or after `</answer>` but whitespace,
  each tag exactly once.
- `chat`: the R1 chat shape: an optional `<think>` at the very start (the chat template may prefill it, then the
  completion starts inside the reasoning), non-empty reasoning, one `</think>`, then a non-empty summary that
  contains a `\\boxed{…}` answer. No second think block anywhere.
- `any` (default): either shape.

`tag_count` gives 0.25 for each well-placed tag of the R1-Zero shape: `<think>` once and first, `</think>` once
after it on its own line, `<answer>` once after `</think>`, `</answer>` once after `<answer>` and last. Partial
credit helps a model that has not found the shape yet (open-r1's `tag_count_reward`, with placement checked, so
four tags in a random order do not earn a full point).

All checks are `str.find`/`count` scans: linear in the completion length, no backtracking regex.

Example::

    >>> fn = get_reward("format")
    >>> fn(["<think>\\nstep\\n</think>\\n<answer>\\n4\\n</answer>", "4"])
    [1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from r1cli.grading.answers import last_boxed
from r1cli.prompts import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, completion_text


@dataclass
class FormatParams:
    """Params of `format`."""

    style: Literal["any", "r1-zero", "chat"] = field(
        default="any",
        metadata={
            "help": "Accepted shape: r1-zero (<think>/<answer> tags), chat (think + summary with \\boxed{}) or any."
        },
    )


@dataclass
class TagCountParams:
    """Params of `tag_count` (none)."""


def is_r1_zero_format(text: str) -> bool:
    """The strict R1-Zero shape `<think>\\n…\\n</think>\\n<answer>\\n…\\n</answer>` (trailing whitespace allowed)."""
    t = text.strip()
    if not t.startswith(THINK_OPEN + "\n") or not t.endswith("\n" + ANSWER_CLOSE):
        return False
    if any(t.count(tag) != 1 for tag in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)):
        return False
    mid = "\n" + THINK_CLOSE + "\n" + ANSWER_OPEN + "\n"
    k = t.find(mid)
    if k < 0:
        return False
    think = t[len(THINK_OPEN) + 1 : k]
    answer = t[k + len(mid) : len(t) - len(ANSWER_CLOSE) - 1]
    return bool(think.strip()) and bool(answer.strip())


def is_chat_format(text: str) -> bool:
    """The R1 chat shape: `[<think>]reasoning</think>summary` with a `\\boxed{}` in the summary."""
    t = text.strip()
    if t.count(THINK_CLOSE) != 1:
        return False
    opens = t.count(THINK_OPEN)
    if opens > 1 or (opens == 1 and not t.startswith(THINK_OPEN)):
        return False
    j = t.find(THINK_CLOSE)
    reasoning = t[len(THINK_OPEN) if opens else 0 : j]
    summary = t[j + len(THINK_CLOSE) :]
    if not reasoning.strip() or not summary.strip():
        return False
    boxed = last_boxed(summary)
    return boxed is not None and bool(boxed.strip())


def tag_score(text: str) -> float:
    """0.25 per well-placed tag of the R1-Zero shape."""
    t = text.strip()
    score = 0.0
    i_open = t.find(THINK_OPEN)
    i_close = t.find(THINK_CLOSE)
    i_ans = t.find(ANSWER_OPEN)
    i_ans_close = t.find(ANSWER_CLOSE)
    if t.count(THINK_OPEN) == 1 and i_open == 0 and t[len(THINK_OPEN) : len(THINK_OPEN) + 1] == "\n":
        score += 0.25
    if (
        t.count(THINK_CLOSE) == 1
        and i_close > i_open >= 0
        and t[i_close - 1 : i_close] == "\n"
        and t[i_close + len(THINK_CLOSE) : i_close + len(THINK_CLOSE) + 1] == "\n"
    ):
        score += 0.25
    if (
        t.count(ANSWER_OPEN) == 1
        and i_ans > i_close >= 0
        and t[i_ans + len(ANSWER_OPEN) : i_ans + len(ANSWER_OPEN) + 1] == "\n"
    ):
        score += 0.25
    if (
        t.count(ANSWER_CLOSE) == 1
        and i_ans_close > i_ans >= 0
        and t.endswith(ANSWER_CLOSE)
        and t[i_ans_close - 1 : i_ans_close] == "\n"
    ):
        score += 0.25
    return score


def build_format(p: FormatParams):
    checks = {
        "r1-zero": (is_r1_zero_format,),
        "chat": (is_chat_format,),
        "any": (is_r1_zero_format, is_chat_format),
    }[p.style]

    def format(completions: Sequence[Any], **_: Any) -> list[float | None]:  # noqa: A001 - the registered name
        out: list[float | None] = []
        for c in completions:
            text = completion_text(c)
            out.append(1.0 if any(check(text) for check in checks) else 0.0)
        return out

    return format


def build_tag_count(p: TagCountParams):
    def tag_count(completions: Sequence[Any], **_: Any) -> list[float | None]:
        return [tag_score(completion_text(c)) for c in completions]

    return tag_count
