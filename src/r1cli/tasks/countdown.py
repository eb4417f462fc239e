"""`countdown`: reach a target with the given numbers, each used exactly once, with + - * / and parentheses.

    Using the numbers 3, 7, 12, 5, make 44. Use each number exactly once, with + - * / and parentheses.

Every problem is generated from a random expression over the numbers (exact integer intermediates), so each has a
solution; `answer` holds that reference expression, but any expression that uses the numbers exactly once and
evaluates to `target` is correct: grade with `verify` (it parses the expression with `ast`, never `eval`).
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from r1cli.tasks.base import Task, check

OPS = "+-*/"
MAX_EXPR_CHARS = 200


@dataclass
class CountdownParams:
    """Difficulty knobs of `countdown`."""

    min_numbers: int = field(default=3, metadata={"help": "Fewest numbers given."})
    max_numbers: int = field(default=4, metadata={"help": "Most numbers given (at most 6)."})
    max_number: int = field(default=25, metadata={"help": "Numbers are drawn from 1..max_number."})
    max_target: int = field(default=100, metadata={"help": "Targets are in 1..max_target."})

    def __post_init__(self) -> None:
        check(2 <= self.min_numbers <= self.max_numbers <= 6,
              f"need 2 <= min_numbers <= max_numbers <= 6, got {self.min_numbers}, {self.max_numbers}")
        check(self.max_number >= 2, f"max_number must be >= 2, got {self.max_number}")
        check(self.max_target >= 1, f"max_target must be >= 1, got {self.max_target}")


def _apply(op: str, x: int, y: int) -> int | None:
    if op == "+":
        return x + y
    if op == "-":
        return x - y if x > y else None
    if op == "*":
        return x * y
    return x // y if y > 1 and x % y == 0 else None


class CountdownTask(Task):
    name = "countdown"
    params_cls = CountdownParams
    styles = ("detailed",)

    def sample(self, rng: random.Random) -> dict[str, Any]:
        p: CountdownParams = self.params
        while True:
            k = rng.randint(p.min_numbers, p.max_numbers)
            numbers = [rng.randint(1, p.max_number) for _ in range(k)]
            # combine in a random order: pool of (value, expression); each step merges two entries
            pool = [(v, str(v)) for v in numbers]
            steps: list[str] = []
            ok = True
            while len(pool) > 1:
                i, j = rng.sample(range(len(pool)), 2)
                (x, ex), (y, ey) = pool[i], pool[j]
                ops = [o for o in OPS if _apply(o, x, y) is not None]
                if not ops:
                    ok = False
                    break
                op = rng.choice(ops)
                z = _apply(op, x, y)
                steps.append(f"{x} {op} {y} = {z}")
                pool = [e for t, e in enumerate(pool) if t not in (i, j)] + [(z, f"({ex} {op} {ey})")]
            target, expr = pool[0]
            if ok and 1 <= target <= p.max_target:
                expr = expr[1:-1] if expr.startswith("(") and expr.endswith(")") else expr
                nums = ", ".join(map(str, numbers))
                prompt = (f"Using the numbers {nums}, make {target}. "
                          "Use each number exactly once, with + - * / and parentheses.")
                return {"prompt": prompt, "answer": expr, "numbers": numbers, "target": target, "steps": steps}

    def solution(self, row: dict[str, Any], style: str = "detailed") -> str:
        self.check_style(style)
        return self.format_solution(style, list(row["steps"]), row["answer"])

    def verify(self, row: dict[str, Any], answer: str | None) -> bool:
        if answer is None:
            return False
        expr = answer.strip().split("=")[0].strip()
        got = evaluate_expression(expr)
        if got is None:
            return False
        value, used = got
        return value == int(row["target"]) and Counter(used) == Counter(int(v) for v in row["numbers"])


def evaluate_expression(expr: str) -> tuple[Fraction, list[int]] | None:
    """(value, numbers used) of an arithmetic expression of integers, + - * / and parentheses; None if it is
    anything else (names, calls, powers, floats), too long, or divides by zero."""
    if not expr or len(expr) > MAX_EXPR_CHARS:
        return None
    expr = expr.replace("×", "*").replace("÷", "/").replace("\\times", "*").replace("\\div", "/")
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError):
        return None
    used: list[int] = []

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if b == 0:
                raise ZeroDivisionError
            return a / b
        raise ValueError("unsupported")

    try:
        return ev(tree), used
    except (ValueError, ZeroDivisionError, RecursionError):
        return None
