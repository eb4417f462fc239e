"""`repetition`: an n-gram repetition penalty (Yeo et al. 2025, as in open-r1's `repetition_penalty_reward`).

Penalty = `max_penalty` x (1 - distinct n-grams / all n-grams) over lower-cased whitespace words of the whole
completion: 0 for text without repeated n-grams, approaching `max_penalty` for a loop. Texts shorter than one
n-gram score 0. Linear time (a hash set of n-gram tuples); texts are capped at `max_words` words.

Example::

    >>> fn = get_reward("repetition", ngram_size=2, max_penalty=-1.0)
    >>> fn(["a b c d", "a b a b a b"])
    [0.0, -0.6]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from r1cli.prompts import completion_text


@dataclass
class RepetitionParams:
    """Params of `repetition`."""

    ngram_size: int = field(default=3, metadata={"help": "n of the n-grams compared."})
    max_penalty: float = field(default=-1.0, metadata={"help": "Penalty of a fully repetitive text (<= 0)."})
    max_words: int = field(
        default=200_000, metadata={"help": "Longer texts are judged on their first words."}
    )

    def __post_init__(self) -> None:
        if self.ngram_size < 1:
            raise ValueError(f"ngram_size must be >= 1, got {self.ngram_size}")
        if self.max_penalty > 0:
            raise ValueError(f"max_penalty must be <= 0 (it is a penalty), got {self.max_penalty}")
        if self.max_words < self.ngram_size:
            raise ValueError("max_words must be >= ngram_size")


def repetition_penalty(text: str, ngram_size: int, max_penalty: float, max_words: int = 200_000) -> float:
    words = text.lower().split()[:max_words]
    total = len(words) - ngram_size + 1
    if total <= 0:
        return 0.0
    distinct = len({tuple(words[i : i + ngram_size]) for i in range(total)})
    return max_penalty * (1.0 - distinct / total) + 0.0  # + 0.0: no "-0.0" for a clean text


def build_repetition(p: RepetitionParams):
    def repetition(completions: Sequence[Any], **_: Any) -> list[float | None]:
        return [
            repetition_penalty(completion_text(c), p.ngram_size, p.max_penalty, p.max_words)
            for c in completions
        ]

    return repetition
