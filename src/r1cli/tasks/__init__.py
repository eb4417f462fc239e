"""Built-in verifiable tasks: `get_task(name, **params)` and `available_tasks()`.

Each task generates problems with exact answers, deterministic by seed, with a hash split that keeps train and
test disjoint (`r1cli.tasks.base`), worked solutions in the R1 output format (`task.solution(row, style)`) and a
verifier (`task.verify(row, answer_text)`).
"""

from __future__ import annotations

from typing import Any

from r1cli.errors import ConfigError
from r1cli.tasks.base import Task, split_of

_TASKS = {
    "addition": ("r1cli.tasks.addition", "AdditionTask"),
    "arith": ("r1cli.tasks.arith", "ArithTask"),
    "countdown": ("r1cli.tasks.countdown", "CountdownTask"),
    "linear": ("r1cli.tasks.linear", "LinearTask"),
}

__all__ = ["Task", "available_tasks", "get_task", "split_of"]


def available_tasks() -> list[str]:
    return sorted(_TASKS)


def get_task(name: str, **params: Any) -> Task:
    """The task `name` with its difficulty knobs (unknown names or params raise ConfigError, exit 2)."""
    import importlib

    if name not in _TASKS:
        raise ConfigError(f"unknown task {name!r}", hint=f"built-in tasks: {', '.join(available_tasks())}")
    mod, cls = _TASKS[name]
    return getattr(importlib.import_module(mod), cls)(**params)
