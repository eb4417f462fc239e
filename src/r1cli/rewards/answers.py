"""Final answers: taken out of a completion with the rules that make them hard to game, and shaped for math-verify.

`extract_answer` applies `r1cli.prompts.extract_final_answer`'s rules (the `<answer>` tag after the reasoning,
else the last `\\boxed{}` after `</think>`, else of the whole text) plus three rules of ours:
- an unclosed `<think>` means the whole completion is reasoning: no answer (an answer inside the think block
  never counts);
- hedging: two or more *different* `\\boxed{}` contents in the answer region (`\\boxed{1} or \\boxed{2}`), or two
  or more different `<answer>` tags, give no answer, so the last of a list of guesses is not rewarded (the same
  answer repeated is fine);
- an answer longer than `MAX_ANSWER_CHARS` is no answer (MATH-500's longest is 53 characters; parsing a
  megabyte of LaTeX would only burn the time budget).

`as_latex` is how an extracted answer (or a gold answer) is handed to `math_verify.parse`: as inline math,
`$…$`. Measured on MATH-500 it agrees with wrapping in `\\boxed{}` on every reference answer and parses about
twice as fast; it also accepts `42.`.
"""

from __future__ import annotations

from typing import Any

from r1cli.prompts import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
    boxed_spans,
    completion_text,
    extract_answer_tag,
    extract_final_answer,
    last_boxed,
    split_reasoning,
)

MAX_ANSWER_CHARS = 1000
_HEDGE_WINDOW = 64  # distinct boxes looked at, counting from the end


def as_latex(answer: str) -> str:
    """The string given to `math_verify.parse` for an extracted answer: `$answer$`."""
    return "$" + answer + "$"


def is_canonical_int(s: str) -> bool:
    """`0`, `42`, `-7`: an integer written the one canonical way, at most 15 digits (exact in math-verify's
    numeric comparison), so two of them are equivalent exactly when the strings are equal."""
    body = s[1:] if s.startswith("-") else s
    if not body or len(body) > 15 or not body.isascii() or not body.isdigit():
        return False
    return body == "0" and s == "0" or body[0] != "0"


def normalize_gold(gold: Any) -> str | None:
    """A gold answer as a string: a full reference solution is reduced to its last `\\boxed{}`; empty -> None."""
    if gold is None:
        return None
    s = str(gold).strip()
    if "\\boxed" in s or "\\fbox" in s:
        b = last_boxed(s)
        if b is not None:
            s = b.strip()
    return s or None


def _answer_region(text: str) -> str:
    tag_end = text.rfind(THINK_CLOSE)
    tail = text[tag_end + len(THINK_CLOSE) :] if tag_end >= 0 else text
    if extract_answer_tag(text) is not None:
        i = tail.rfind(ANSWER_OPEN)
        j = tail.find(ANSWER_CLOSE, i)
        return tail[i + len(ANSWER_OPEN) : j]
    return split_reasoning(text)[1] if tag_end >= 0 else text


def _answer_tags(tail: str, limit: int = _HEDGE_WINDOW) -> set[str]:
    seen: set[str] = set()
    i = tail.find(ANSWER_OPEN)
    while i >= 0 and len(seen) <= 1 and limit > 0:
        j = tail.find(ANSWER_CLOSE, i + len(ANSWER_OPEN))
        if j < 0:
            break
        seen.add("".join(tail[i + len(ANSWER_OPEN) : j].split()))
        i = tail.find(ANSWER_OPEN, j)
        limit -= 1
    return seen


def is_hedged(text: str) -> bool:
    """True when the answer region holds two or more different `\\boxed{}` contents, or the completion gives
    two or more different `<answer>` tags after its reasoning."""
    tag_end = text.rfind(THINK_CLOSE)
    tail = text[tag_end + len(THINK_CLOSE) :] if tag_end >= 0 else text
    if tail.count(ANSWER_OPEN) > 1 and len(_answer_tags(tail)) > 1:
        return True
    region = _answer_region(text)
    if "\\boxed" not in region and "\\fbox" not in region:
        return False
    seen: set[str] = set()
    for _, b in boxed_spans(region)[-_HEDGE_WINDOW:]:
        seen.add("".join(b.split()))
        if len(seen) > 1:
            return True
    return False


def extract_answer(completion: Any, *, require_think: bool = False) -> str | None:
    """The final answer of a completion (string or TRL conversational form), or None when it has none, hides it
    in the think block, hedges between boxes, or is absurdly long. `require_think`: a completion without
    `</think>` has no answer (for templates that prefill `<think>`, where a truncated completion would otherwise
    be graded on a box inside its unfinished reasoning).

    >>> extract_answer("<think>\\n2+2\\n</think>\\n<answer>\\n4\\n</answer>")
    '4'
    >>> extract_answer("<think>so \\\\boxed{4}</think> I am not sure.") is None
    True
    >>> extract_answer("The answer is \\\\boxed{3} or \\\\boxed{4}.") is None
    True
    """
    text = completion_text(completion)
    if not text:
        return None
    if THINK_CLOSE not in text and (require_think or THINK_OPEN in text):
        return None
    ans = extract_final_answer(text)
    if ans is None:
        return None
    ans = ans.strip()
    if not ans or len(ans) > MAX_ANSWER_CHARS or is_hedged(text):
        return None
    return ans
