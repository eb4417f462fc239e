"""`accuracy`: 1.0 when the completion's final answer is math-equivalent to the gold answer, else 0.0.

The answer is the `<answer>…</answer>` content after the reasoning, read as math-verify reads it (a box, an answer
in words with inline math, bare LaTeX), else the `\\boxed{}` after `</think>`; several different boxes are one
multi-part answer (see `r1cli.grading.answers` for the anti-hacking rules: nothing from inside the think block
counts, and an answer giving several values scores 0 unless the gold has several values). A gold answer may be a
bare answer or a full reference solution (math-verify's own extraction finds its answer). Equivalence is
math-verify's (symbolic and numeric, fractions, sets, intervals, LaTeX), through the grading engine: each distinct
gold is parsed once per call, not once per completion. A gold answer that math-verify cannot parse gives None (TRL
leaves it out of the mean).

Example::

    >>> fn = get_reward("accuracy")
    >>> fn(["<think>\\nhalf\\n</think>\\nSo \\\\boxed{\\\\frac{1}{2}}.", "\\\\boxed{0.4}"], answer=["0.5", "0.5"])
    [1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from r1cli.grading.engine import DEFAULT_TIMEOUT_S, grade_completions


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
        tasks = columns.get("task")
        if tasks is not None and any(_builtin_task(t) is not None for t in tasks):
            return _task_verdicts(completions, golds, tasks, columns, p)
        verdicts = grade_completions(completions, golds, timeout_s=p.timeout_s, require_think=p.require_think)
        return [None if v is None else float(v) for v in verdicts]

    return accuracy


def _builtin_task(name: Any) -> Any:
    """The built-in task called `name` (its own verifier: e.g. countdown checks which numbers were used), or None."""
    if not isinstance(name, str):
        return None
    from r1cli.tasks import available_tasks, get_task

    return get_task(name) if name in available_tasks() else None


def _task_verdicts(completions: Sequence[Any], golds: Sequence[Any], tasks: Sequence[Any], columns: dict, p) -> list:
    """Rows of built-in tasks are judged by the task's verifier (the same one `r1 eval` uses), others by math-verify."""
    from r1cli.grading.answers import extract_answer

    out: list[float | None] = [None] * len(completions)
    rest = [i for i, t in enumerate(tasks) if _builtin_task(t) is None]
    for i, t in enumerate(tasks):
        task = _builtin_task(t)
        if task is None:
            continue
        row = {k: v[i] for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == len(completions)}
        answer = extract_answer(completions[i], require_think=p.require_think)
        out[i] = float(bool(task.verify(row, answer)))
    if rest:
        verdicts = grade_completions(
            [completions[i] for i in rest], [golds[i] for i in rest], timeout_s=p.timeout_s, require_think=p.require_think
        )
        for i, v in zip(rest, verdicts, strict=True):
            out[i] = None if v is None else float(v)
    return out
