"""`accuracy`: 1.0 when the completion's final answer is math-equivalent to the gold answer, else 0.0.

The answer is the `<answer>…</answer>` content (its last `\\boxed{}` if it has one) after the reasoning, else the
last `\\boxed{}` after `</think>` (see `r1cli.rewards.answers` for the anti-hacking rules: nothing from inside
the think block, no hedging between boxes). Equivalence is math-verify's (symbolic and numeric, fractions, sets,
intervals, LaTeX), through the grading engine: each distinct gold is parsed once per call, not once per
completion. A gold answer that math-verify cannot parse gives None (TRL leaves it out of the mean).

Example::

    >>> fn = get_reward("accuracy")
    >>> fn(["<think>\\nhalf\\n</think>\\nSo \\\\boxed{\\\\frac{1}{2}}.", "\\\\boxed{0.4}"], answer=["0.5", "0.5"])
    [1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from r1cli.rewards.engine import DEFAULT_TIMEOUT_S, grade_completions


@dataclass
class AccuracyParams:
    """Params of `accuracy`."""

    timeout_s: float = field(
        default=DEFAULT_TIMEOUT_S,
        metadata={
            "help": "Per-item time limit for parsing and comparing one answer (seconds); overrun -> 0."
        },
    )
    column: str = field(default="answer", metadata={"help": "Dataset column that holds the gold answer."})
    require_think: bool = field(
        default=False,
        metadata={"help": "No answer without </think> (set it when the template prefills <think>)."},
    )

    def __post_init__(self) -> None:
        if not self.timeout_s >= 1.0:
            raise ValueError(
                f"timeout_s must be >= 1 (math-verify's own timeouts are whole seconds), got {self.timeout_s}"
            )


def build_accuracy(p: AccuracyParams):
    def accuracy(completions: Sequence[Any], **columns: Any) -> list[float | None]:
        golds = columns.get(p.column)
        if golds is None:
            raise ValueError(
                f"accuracy reward needs the gold answers in dataset column {p.column!r}; columns given: "
                + ", ".join(sorted(k for k in columns if not k.startswith(("trainer_", "log_"))))
            )
        verdicts = grade_completions(completions, golds, timeout_s=p.timeout_s, require_think=p.require_think)
        return [None if v is None else float(v) for v in verdicts]

    return accuracy
