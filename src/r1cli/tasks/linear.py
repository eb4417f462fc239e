"""`linear`: solve a*x + b = c for an integer x.

    Solve for x: 3x - 5 = 16

The worked solution moves the constant, then divides (`3x = 16 + 5 = 21`, `x = 21 / 3 = 7`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from r1cli.tasks.base import Task, check, parse_int


@dataclass
class LinearParams:
    """Difficulty knobs of `linear`."""

    max_coef: int = field(default=9, metadata={"help": "a is drawn from 2..max_coef."})
    max_x: int = field(default=20, metadata={"help": "x is drawn from -max_x..max_x."})
    max_const: int = field(default=50, metadata={"help": "b is drawn from -max_const..max_const (not 0)."})

    def __post_init__(self) -> None:
        check(self.max_coef >= 2, f"max_coef must be >= 2, got {self.max_coef}")
        check(self.max_x >= 1, f"max_x must be >= 1, got {self.max_x}")
        check(self.max_const >= 1, f"max_const must be >= 1, got {self.max_const}")


def _signed(b: int) -> str:
    return f"+ {b}" if b >= 0 else f"- {-b}"


class LinearTask(Task):
    name = "linear"
    params_cls = LinearParams
    styles = ("detailed", "terse")

    def sample(self, rng: random.Random) -> dict[str, Any]:
        p: LinearParams = self.params
        a = rng.randint(2, p.max_coef)
        x = rng.randint(-p.max_x, p.max_x)
        b = rng.choice([v for v in range(-p.max_const, p.max_const + 1) if v != 0])
        c = a * x + b
        return {"prompt": f"Solve for x: {a}x {_signed(b)} = {c}", "answer": str(x), "a": a, "b": b, "c": c}

    def solution(self, row: dict[str, Any], style: str = "detailed") -> str:
        self.check_style(style)
        a, b, c, x = row["a"], row["b"], row["c"], int(row["answer"])
        steps = []
        if style == "detailed":
            move = f"{c} - {b}" if b >= 0 else f"{c} + {-b}"
            steps = [f"{a}x {_signed(b)} = {c}", f"{a}x = {move} = {c - b}", f"x = {c - b} / {a} = {x}"]
        return self.format_solution(style, steps, str(x))

    def verify(self, row: dict[str, Any], answer: str | None) -> bool:
        if answer is not None:
            s = answer.strip()
            if s.replace(" ", "").lower().startswith("x="):
                s = s.split("=", 1)[1]
            answer = s
        got = parse_int(answer)
        return got is not None and got == int(row["answer"])
