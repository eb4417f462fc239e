"""Length-aware rewards: `soft_overlong` (DAPO) and `cosine_length` (correctness-dependent scaling).

Length is counted in tokens when TRL passes `completion_ids` (it does, to every reward function), else in the
unit chosen by `unit`: `chars` or `words` (whitespace-separated).

- `soft_overlong` (DAPO, arXiv 2503.14476, eq. 13): 0 up to `max_length - buffer`, then a linear ramp to -1 at
  `max_length`, and -1 beyond. It is a penalty added to the task reward, so a truncated answer is not mistaken
  for a wrong one only.
- `cosine_length` (Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning", as in open-r1): a correct
  answer earns from `max_value_correct` (short) down to `min_value_correct` (at `max_length`); a wrong one is
  penalised from `min_value_wrong` (short) up to `max_value_wrong` (long), so thinking longer is cheaper when
  wrong and dearer when right. Correctness comes from the grading engine (as `accuracy`); gold unparseable ->
  None.

Example::

    >>> fn = get_reward("soft_overlong", max_length=100, buffer=20, unit="chars")
    >>> fn(["x" * 50, "x" * 90, "x" * 150])
    [0.0, -0.5, -1.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from r1cli.grading.engine import DEFAULT_TIMEOUT_S, grade_completions
from r1cli.prompts import completion_text

Unit = Literal["tokens", "chars", "words"]


def lengths(
    completions: Sequence[Any], unit: Unit, completion_ids: Sequence[Sequence[int]] | None
) -> list[int]:
    """Length of each completion: tokens from `completion_ids` when given (unit tokens), else chars or words."""
    if unit == "tokens":
        if completion_ids is None:
            raise ValueError(
                "this reward counts tokens but got no completion_ids (TRL passes them); set unit: chars or words"
            )
        return [len(ids) for ids in completion_ids]
    texts = [completion_text(c) for c in completions]
    if unit == "chars":
        return [len(t) for t in texts]
    return [len(t.split()) for t in texts]


@dataclass
class SoftOverlongParams:
    """Params of `soft_overlong`."""

    max_length: int = field(
        default=1024, metadata={"help": "L_max: the generation budget (max_completion_length)."}
    )
    buffer: int = field(
        default=256, metadata={"help": "L_cache: the soft zone before max_length where the penalty ramps."}
    )
    unit: Unit = field(
        default="tokens", metadata={"help": "Length unit: tokens (completion_ids), chars or words."}
    )

    def __post_init__(self) -> None:
        if self.max_length <= 0:
            raise ValueError(f"max_length must be > 0, got {self.max_length}")
        if not 0 < self.buffer <= self.max_length:
            raise ValueError(f"buffer must be in (0, max_length={self.max_length}], got {self.buffer}")


def soft_overlong_penalty(length: int, max_length: int, buffer: int) -> float:
    """DAPO eq. 13."""
    soft = max_length - buffer
    if length <= soft:
        return 0.0
    if length <= max_length:
        return (soft - length) / buffer
    return -1.0


def build_soft_overlong(p: SoftOverlongParams):
    def soft_overlong(completions: Sequence[Any], completion_ids: Any = None, **_: Any) -> list[float | None]:
        return [
            soft_overlong_penalty(n, p.max_length, p.buffer)
            for n in lengths(completions, p.unit, completion_ids)
        ]

    return soft_overlong


@dataclass
class CosineLengthParams:
    """Params of `cosine_length`."""

    max_length: int = field(default=1024, metadata={"help": "Length at which the cosine schedule ends."})
    min_value_correct: float = field(
        default=0.5, metadata={"help": "Reward of a correct answer at max_length."}
    )
    max_value_correct: float = field(
        default=1.0, metadata={"help": "Reward of a correct answer at length 0."}
    )
    min_value_wrong: float = field(default=-1.0, metadata={"help": "Reward of a wrong answer at length 0."})
    max_value_wrong: float = field(default=-0.5, metadata={"help": "Reward of a wrong answer at max_length."})
    unit: Unit = field(
        default="tokens", metadata={"help": "Length unit: tokens (completion_ids), chars or words."}
    )
    column: str = field(default="answer", metadata={"help": "Dataset column that holds the gold answer."})
    timeout_s: float = field(default=DEFAULT_TIMEOUT_S, metadata={"help": "Per-item grading time limit (s)."})

    def __post_init__(self) -> None:
        if self.max_length <= 0:
            raise ValueError(f"max_length must be > 0, got {self.max_length}")
        if self.min_value_correct > self.max_value_correct:
            raise ValueError("min_value_correct must be <= max_value_correct")
        if self.min_value_wrong > self.max_value_wrong:
            raise ValueError("min_value_wrong must be <= max_value_wrong")
        if not self.timeout_s >= 1.0:
            raise ValueError(f"timeout_s must be >= 1, got {self.timeout_s}")


def cosine_scaled(length: int, correct: bool, p: CosineLengthParams) -> float:
    progress = min(length, p.max_length) / p.max_length
    cosine = math.cos(progress * math.pi)
    if correct:
        lo, hi = p.min_value_correct, p.max_value_correct
    else:  # swapped: the longer, the less negative
        lo, hi = p.max_value_wrong, p.min_value_wrong
    return lo + 0.5 * (hi - lo) * (1.0 + cosine)


def build_cosine_length(p: CosineLengthParams):
    def cosine_length(
        completions: Sequence[Any], completion_ids: Any = None, **columns: Any
    ) -> list[float | None]:
        golds = columns.get(p.column)
        if golds is None:
            raise ValueError(f"cosine_length needs the gold answers in dataset column {p.column!r}")
        verdicts = grade_completions(completions, golds, timeout_s=p.timeout_s)
        ns = lengths(completions, p.unit, completion_ids)
        return [None if v is None else cosine_scaled(n, v, p) for v, n in zip(verdicts, ns, strict=True)]

    return cosine_length
