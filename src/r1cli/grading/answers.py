"""Final answers: taken out of a completion with the rules that make them hard to game, and shaped for math-verify.

`extract_answer` takes the answer region: the last `<answer>` tag after the reasoning, whole (math-verify's own
extraction reads it: a box, an answer in words with inline math, a display matrix), else the `\\boxed{}` after
`</think>`, else of the whole text (`r1cli.prompts.extract_final_answer`); and adds rules of ours:
- an unclosed `<think>` means the whole completion is reasoning: no answer (an answer inside the think block
  never counts);
- two or more different `<answer>` tags after the reasoning give no answer;
- two or more *different* `\\boxed{}` contents in the answer region are one multi-part answer, returned as
  `\\boxed{a}, \\boxed{b}` (math-verify reads it as the set {a, b}). The grader counts it only against a gold with
  several values (`\\boxed{1}, \\boxed{2}` for `\\{1, 2\\}`); against a single-valued gold it is hedging and
  scores 0 (`\\boxed{1} or \\boxed{2}` for `1`), however math-verify would compare it. The same answer repeated
  is one answer;
- an answer that math-verify would parse whole as LaTeX is capped at `MAX_ANSWER_CHARS`, one that its extraction
  searches (with its own math, or prose) at `MAX_REGION_CHARS`: parsing a megabyte of LaTeX would only burn the
  time budget.

`parse_inputs` says what `math_verify.parse` reads for an answer or a gold answer. Text with its own math (`$…$`,
`\\(…\\)`, `\\[…\\]`, `\\boxed{}`: an answer in words, a full reference solution) and prose without any (`83
boxes in all`, a plain-text solution) go as they are, so math-verify's own extraction finds the answer in them;
bare LaTeX (`\\frac{1}{2}`, `x^2+1`, MATH's answers) goes as inline math, `$…$`, which math-verify needs to read it
as LaTeX at all (as it is, math-verify would pick a number out of it: 3 from `x^2+1`); a bare number goes as it
is too, so that math-verify's number grammar reads `1 000` and `1000,99` (as LaTeX they would be 1·000 and the
list {1000, 99}), and with a comma also as LaTeX (`-2,1` may be a list of roots). The readings of one text are
pooled: two answers match when any reading of one matches any reading of the other. A label before a bare answer
(`A: 260`) is dropped, and prose in which math-verify finds nothing is read as LaTeX after all (`Evelyn`).

Hedging is judged in the grader, on what math-verify reads: an answer that gives several values (several boxes,
`1 or 2`, `$1$ and $2$`, or a last number offered as an alternative, `1, or maybe 2`) is right only for a gold
with several values (a set, a tuple, `(a, b)`). A bare number is exempt: its list reading (`1,5` as {1, 5}) is
another reading of the one number, not a second value.
"""

from __future__ import annotations

import re
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
    last_boxed,  # noqa: F401 - re-exported: callers take it from here
    split_reasoning,
)

MAX_ANSWER_CHARS = 1000
MAX_REGION_CHARS = 16_000
_HEDGE_WINDOW = 64  # boxes looked at, counting from the end

# An unescaped `$`, `\(` or `\[`: the text carries its own math delimiters (`\$18` is a price, not math).
_MATH_DELIMS = re.compile(r"(?<!\\)\$|\\\(|\\\[")
# math-verify's number grammar (its ExprExtractionConfig): `1,234.5`, `1 234`, `12,5` (decimal comma), `.5`, `42`.
_NUMBER = re.compile(r"-?(?:[1-9]\d{0,2}(?:[ ,]\d{3})+(?:\.\d+)?|\d+[.,]\d+|\.\d+|\d+)")


_COMMAND = re.compile(r"\\[a-zA-Z]+")
_WORD = re.compile(r"[a-zA-Z]{3,}")
# Words that bare LaTeX may hold without a backslash; `and` joins values (`1 and 2` stays a list, read as LaTeX).
_MATH_WORD_LIST = (
    "and sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log exp max min det gcd lcm mod lim sup inf "
    "deg dim ker sqrt frac dfrac infty cdot times circ"
)
_MATH_WORDS = frozenset(_MATH_WORD_LIST.split())
# The last number of a text offered as an alternative to the one before it (`3 or 5`, `3, or maybe 5.`).
_ALTERNATIVES = re.compile(
    r"(?<![\d.])(-?\d+(?:\.\d+)?)(?![\d.])[^\d\n]{0,24}?\bor\b[^\d\n]{0,24}?(-?\d+(?:\.\d+)?)\D*$"
)
# A label before a bare answer (`A: 260`, `Answer: x^2+1`): not part of the math.
_LABEL = re.compile(r"\s*(?:A|(?i:final\s+answer|answer))\s*:\s*")


def has_own_math(text: str) -> bool:
    """Whether `text` carries its own math delimiters or boxes, so math-verify's extraction can find the math."""
    return "\\boxed" in text or _MATH_DELIMS.search(text) is not None


def _unlabelled(text: str) -> str:
    m = _LABEL.match(text)
    return text[m.end() :] if m else text


def is_number(text: str) -> bool:
    """Whether `text` is one number in math-verify's number grammar (`42`, `-0.5`, `1 000`, `1,000.99`, `1,22`),
    after a label (`A: 260`)."""
    return _NUMBER.fullmatch(_unlabelled(text)) is not None


def is_prose(text: str) -> bool:
    """Whether bare text is words rather than LaTeX: a word of three letters or more outside LaTeX commands and
    braces, other than a function name or `and` (`\\text{Evelyn}`, `sin x`, `1 and 2` and `x \\leq 5` are not
    prose; `83 boxes` is)."""
    depth, top = 0, []
    for ch in _COMMAND.sub(" ", text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        elif depth == 0:
            top.append(ch)
    return any(w.lower() not in _MATH_WORDS for w in _WORD.findall("".join(top)))


def parse_inputs(text: str) -> list[str]:
    """The strings given to `math_verify.parse` for one answer or gold answer (their readings are pooled).

    >>> parse_inputs("\\\\frac{1}{2}"), parse_inputs("1 000"), parse_inputs("-2,1"), parse_inputs("A: 260")
    (['$\\\\frac{1}{2}$'], ['1 000'], ['-2,1', '$-2,1$'], ['260'])
    >>> parse_inputs("Therefore $x \\\\geq 5$."), parse_inputs("83 boxes")
    (['Therefore $x \\\\geq 5$.'], ['83 boxes'])
    """
    if has_own_math(text):
        return [text]
    text = _unlabelled(text)
    if is_number(text):
        return [text, "$" + text + "$"] if "," in text else [text]
    if is_prose(text):
        return [text]
    return ["$" + text + "$"]


def fallback_input(text: str) -> str | None:
    """What `math_verify.parse` reads when `parse_inputs(text)` gives nothing: prose in which math-verify finds
    no math is read as LaTeX (`Evelyn` for `\\text{Evelyn}`); None for everything else."""
    if has_own_math(text) or len(text) > MAX_ANSWER_CHARS:
        return None
    text = _unlabelled(text)
    return "$" + text + "$" if not is_number(text) and is_prose(text) else None


def too_long(answer: str) -> bool:
    """Whether an answer is over its cap: `MAX_REGION_CHARS` when math-verify searches it (it has its own math,
    or is prose), else `MAX_ANSWER_CHARS`."""
    if len(answer) <= MAX_ANSWER_CHARS:
        return False
    return len(answer) > MAX_REGION_CHARS or not (has_own_math(answer) or is_prose(answer))


def distinct_boxes(text: str, limit: int = _HEDGE_WINDOW) -> list[str]:
    """The different `\\boxed{}` contents of `text` in order of appearance (whitespace ignored; at most the last
    `limit` boxes are looked at)."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return []
    seen: dict[str, str] = {}
    for _, b in boxed_spans(text)[-limit:]:
        seen.setdefault("".join(b.split()), b.strip())
    return list(seen.values())


def is_multi_part(answer: str) -> bool:
    """Whether an extracted answer gives several values: several different boxes (a multi-part answer, or
    hedging), or a last number offered as an alternative to a different one (`3 or 5`, `3, or maybe 5.`), which
    math-verify would read as the last one alone."""
    if len(distinct_boxes(answer)) > 1:
        return True
    m = _ALTERNATIVES.search(answer[-200:])
    return m is not None and float(m.group(1)) != float(m.group(2))


def is_canonical_int(s: str) -> bool:
    """`0`, `42`, `-7`: an integer written the one canonical way, at most 15 digits (exact in math-verify's
    numeric comparison), so two of them are equivalent exactly when the strings are equal."""
    body = s[1:] if s.startswith("-") else s
    if not body or len(body) > 15 or not body.isascii() or not body.isdigit():
        return False
    return body == "0" and s == "0" or body[0] != "0"


def normalize_gold(gold: Any) -> str | None:
    """A gold answer as a string (stripped); empty -> None. A full reference solution stays whole: math-verify's
    own extraction finds its answer (its box, or its boxes as one multi-part answer)."""
    if gold is None:
        return None
    s = str(gold).strip()
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


def _different_answer_tags(text: str) -> bool:
    tag_end = text.rfind(THINK_CLOSE)
    tail = text[tag_end + len(THINK_CLOSE) :] if tag_end >= 0 else text
    return tail.count(ANSWER_OPEN) > 1 and len(_answer_tags(tail)) > 1


def extract_answer(completion: Any, *, require_think: bool = False) -> str | None:
    """The final answer of a completion (string or TRL conversational form), or None when it has none, hides it
    in the think block, gives different `<answer>` tags, or is absurdly long. Several different boxes come back
    as one multi-part answer `\\boxed{a}, \\boxed{b}`. `require_think`: a completion without `</think>` has no
    answer (for templates that prefill `<think>`, where a truncated completion would otherwise be graded on a box
    inside its unfinished reasoning).

    >>> extract_answer("<think>\\n2+2\\n</think>\\n<answer>\\n4\\n</answer>")
    '4'
    >>> extract_answer("<think>so \\\\boxed{4}</think> I am not sure.") is None
    True
    >>> extract_answer("The answer is \\\\boxed{3} or \\\\boxed{4}.")
    '\\\\boxed{3}, \\\\boxed{4}'
    """
    text = completion_text(completion)
    if not text:
        return None
    if THINK_CLOSE not in text and (require_think or THINK_OPEN in text):
        return None
    if _different_answer_tags(text):
        return None
    boxes = distinct_boxes(_answer_region(text))
    if len(boxes) > 1:
        ans: str | None = ", ".join("\\boxed{" + b + "}" for b in boxes)
    else:
        tag = extract_answer_tag(text)
        ans = tag if tag is not None else extract_final_answer(text)
    if ans is None:
        return None
    ans = ans.strip()
    if not ans or too_long(ans):
        return None
    return ans
