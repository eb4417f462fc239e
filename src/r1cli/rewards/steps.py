"""`reasoning_steps`: rewards explicit step-by-step structure in the reasoning (open-r1's `reasoning_steps_reward`).

Counts step markers in the chain of thought (the text before `</think>`, or all of it): `Step 1:`, numbered lines
`1.`, bullets `- ` / `* ` at a line start, and `First,` `Second,` `Next,` `Finally,`. Score = min(1, count /
`target`). A cheap shaping signal; the regex has no nested quantifiers, so it is linear.

Example::

    >>> fn = get_reward("reasoning_steps", target=3)
    >>> fn(["Step 1: add.\\nStep 2: divide.\\nStep 3: check.", "It is 4."])
    [1.0, 0.0]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from r1cli.prompts import completion_text, split_reasoning

_STEP = re.compile(r"(?:Step \d+:|^\d+\.\s|^[-*] |\b(?:First|Second|Third|Next|Then|Finally),)", re.M)


@dataclass
class ReasoningStepsParams:
    """Params of `reasoning_steps`."""

    target: int = field(default=3, metadata={"help": "Number of step markers that earns the full reward."})

    def __post_init__(self) -> None:
        if self.target < 1:
            raise ValueError(f"target must be >= 1, got {self.target}")


def count_steps(text: str) -> int:
    reasoning, _ = split_reasoning(text)
    return sum(1 for _ in _STEP.finditer(reasoning))


def build_reasoning_steps(p: ReasoningStepsParams):
    def reasoning_steps(completions: Sequence[Any], **_: Any) -> list[float | None]:
        return [min(1.0, count_steps(completion_text(c)) / p.target) for c in completions]

    return reasoning_steps
