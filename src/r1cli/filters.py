"""R1's readability filters for generated reasoning (paper §2.3.3 / §2.3.4: rejection sampling keeps only
correct completions and "filtered out chain-of-thought with mixed languages, long paragraphs, and code blocks").

Each filter is a plain function of one completion; `first_failure(completion, cfg)` runs the enabled ones in
order of cost and returns the name of the first that rejects (one of `FILTER_NAMES`, stable: `r1 reject-sample`
and `r1 distill` count rejections under these names in their manifests) or None when the completion passes.

| name | rejects when |
|---|---|
| format | `require_format` and the completion is neither the R1-Zero nor the R1 chat shape (`rewards.format`) |
| paragraph | a paragraph (text between blank lines) is longer than `max_paragraph_chars` characters |
| code_block | `allow_code_blocks` is off and the reasoning holds a fenced code block (``` or ~~~) |
| repetition | the share of repeated word n-grams (`rewards.repetition`) is above `max_repetition` |
| language_mixing | 1 - `language_consistency` of the reasoning (`rewards.language`) is above `max_language_mixing` |

Departures from the paper, which gives no thresholds: every threshold is ours and configurable; paragraph length
is measured on the whole completion (reasoning and summary), code blocks only in the reasoning (the summary may
legitimately answer with code); a reasoning too short to judge its language (`language_consistency` None) passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

FILTER_NAMES: tuple[str, ...] = ("format", "paragraph", "code_block", "repetition", "language_mixing")

_PARAGRAPH_SPLIT = re.compile(r"\n[ \t]*\n")
_FENCE = re.compile(r"^[ \t]*(```|~~~)", re.M)


@dataclass
class ReadabilityFilters:
    """Which completions count as readable (R1's rejection-sampling filters)."""

    require_format: bool = field(
        default=True,
        metadata={"help": "Reject completions that are neither the R1-Zero nor the R1 chat shape (format reward)."},
    )
    format_style: Literal["any", "r1-zero", "chat"] = field(
        default="any", metadata={"help": "Accepted shape when require_format: any, r1-zero or chat."}
    )
    max_paragraph_chars: Optional[int] = field(
        default=3000,
        metadata={"help": "Reject a completion with a paragraph (between blank lines) longer than this; null: off."},
    )
    allow_code_blocks: bool = field(
        default=False, metadata={"help": "Allow fenced code blocks (``` or ~~~) in the reasoning."}
    )
    max_repetition: Optional[float] = field(
        default=0.5,
        metadata={"help": "Reject when this share of the word n-grams are repeats (0 = none, ~1 = a loop); null: off."},
    )
    repetition_ngram: int = field(default=4, metadata={"help": "n of the word n-grams of the repetition filter."})
    max_language_mixing: Optional[float] = field(
        default=0.1,
        metadata={
            "help": "Reject when more than this share of the reasoning's words is not in `language` "
            "(1 - language_consistency); null: off."
        },
    )
    language: str = field(default="en", metadata={"help": "Target language of the reasoning (ISO 639-1)."})
    languages: list[str] = field(
        default_factory=lambda: ["en", "zh", "fr", "de", "es", "ru"],
        metadata={"help": "Candidate languages of the language detector (see shared notes/language.md)."},
    )

    def __post_init__(self) -> None:
        if self.format_style not in ("any", "r1-zero", "chat"):
            raise ValueError(f"format_style must be any, r1-zero or chat, got {self.format_style!r}")
        if self.max_paragraph_chars is not None and self.max_paragraph_chars < 1:
            raise ValueError(f"max_paragraph_chars must be >= 1 (or null to disable), got {self.max_paragraph_chars}")
        if self.max_repetition is not None and not 0.0 <= self.max_repetition <= 1.0:
            raise ValueError(f"max_repetition must be in [0, 1] (or null), got {self.max_repetition}")
        if self.repetition_ngram < 1:
            raise ValueError(f"repetition_ngram must be >= 1, got {self.repetition_ngram}")
        if self.max_language_mixing is not None and not 0.0 <= self.max_language_mixing <= 1.0:
            raise ValueError(f"max_language_mixing must be in [0, 1] (or null), got {self.max_language_mixing}")
        from r1cli.rewards.language import LANGUAGE_SCRIPTS

        for code in [self.language, *self.languages]:
            if code not in LANGUAGE_SCRIPTS:
                raise ValueError(f"language {code!r} is not supported: use one of {', '.join(sorted(LANGUAGE_SCRIPTS))}")


# ---------------------------------------------------------------------------------------------- the filters


def is_formatted(text: str, style: str = "any") -> bool:
    """The R1-Zero shape and/or the R1 chat shape (`r1cli.rewards.format`)."""
    from r1cli.rewards.format import is_chat_format, is_r1_zero_format

    if style == "r1-zero":
        return is_r1_zero_format(text)
    if style == "chat":
        return is_chat_format(text)
    return is_r1_zero_format(text) or is_chat_format(text)


def longest_paragraph(text: str) -> int:
    """Characters of the longest paragraph (blocks separated by a blank line), stripped."""
    return max((len(p.strip()) for p in _PARAGRAPH_SPLIT.split(text)), default=0)


def reasoning_of(text: str) -> str:
    """The chain of thought: inside `<think>…</think>` (or before `</think>`), else the whole text."""
    from r1cli.rewards.language import chain_of_thought

    return chain_of_thought(text)


def has_code_block(reasoning: str) -> bool:
    """Whether the text holds a fenced code block: a line opening with ``` or ~~~."""
    return _FENCE.search(reasoning) is not None


def repetition_share(text: str, ngram: int = 4) -> float:
    """Share of repeated word n-grams: 1 - distinct / all (0 for short texts)."""
    from r1cli.rewards.repetition import repetition_penalty

    return -repetition_penalty(text, ngram, -1.0) + 0.0


def language_mixing(reasoning: str, language: str = "en", languages: list[str] | None = None) -> float | None:
    """1 - the share of reasoning words in `language` (None: too little text to judge)."""
    from r1cli.rewards.language import target_share

    share = target_share(reasoning, language, languages or [language])
    return None if share is None else 1.0 - share


def first_failure(completion: Any, cfg: ReadabilityFilters) -> str | None:
    """The name of the first filter (in `FILTER_NAMES` order) that rejects `completion`, or None if it passes.
    `completion` is a string or TRL's conversational form."""
    from r1cli.prompts import completion_text

    text = completion_text(completion)
    if cfg.require_format and not is_formatted(text, cfg.format_style):
        return "format"
    if cfg.max_paragraph_chars is not None and longest_paragraph(text) > cfg.max_paragraph_chars:
        return "paragraph"
    reasoning = reasoning_of(text)
    if not cfg.allow_code_blocks and has_code_block(reasoning):
        return "code_block"
    if cfg.max_repetition is not None and repetition_share(text, cfg.repetition_ngram) > cfg.max_repetition:
        return "repetition"
    if cfg.max_language_mixing is not None:
        mix = language_mixing(reasoning, cfg.language, cfg.languages)
        if mix is not None and mix > cfg.max_language_mixing:
            return "language_mixing"
    return None


def passes(completion: Any, cfg: ReadabilityFilters) -> bool:
    """True when no filter rejects the completion."""
    return first_failure(completion, cfg) is None


__all__ = ["FILTER_NAMES", "ReadabilityFilters", "first_failure", "passes"]
