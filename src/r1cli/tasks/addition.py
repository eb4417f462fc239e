"""`addition`: the sum of two whole numbers, worked column by column.

    What is 347 + 85?

The `detailed` solution adds the columns from the ones up, saying what is written and carried at each one
(`Add the ones: 7 + 5 = 12. Write 2, carry 1.`), then states the sum; `terse` gives the sum directly. It is the
task a small pretrained chat model (SmolLM2-135M-Instruct) half knows: it writes sums, but not in a checkable
format, and drops carries past the digits its worked solutions showed, so a cold start on short numbers leaves RL
something to learn on longer ones (`min_digits`/`max_digits`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from r1cli.tasks.base import Task, check, parse_int

COLUMNS = ("ones", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands")


@dataclass
class AdditionParams:
    """Difficulty knobs of `addition`."""

    min_digits: int = field(default=2, metadata={"help": "Fewest digits of each number (1..6)."})
    max_digits: int = field(default=2, metadata={"help": "Most digits of each number (1..6)."})

    def __post_init__(self) -> None:
        check(1 <= self.min_digits <= self.max_digits <= len(COLUMNS),
              f"need 1 <= min_digits <= max_digits <= {len(COLUMNS)}, got min_digits={self.min_digits}, "
              f"max_digits={self.max_digits}")


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


def column_steps(a: int, b: int) -> list[str]:
    """The column-addition sentences for a + b, ones first (`Add the tens: 1 + 4 + 1 = 6. Write 6.`)."""
    da, db = str(a)[::-1], str(b)[::-1]
    steps, carry = [], 0
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        terms = [str(x), str(y)] + ([str(carry)] if carry else [])
        s = x + y + carry
        carry, digit = divmod(s, 10)
        tail = f"Write {digit}, carry {carry}." if carry else f"Write {digit}."
        steps.append(f"Add the {COLUMNS[i]}: {' + '.join(terms)} = {s}. {tail}")
    if carry:
        steps.append(f"Write the last carry: {carry}.")
    return steps


class AdditionTask(Task):
    name = "addition"
    params_cls = AdditionParams
    styles = ("detailed", "terse")

    def sample(self, rng: random.Random) -> dict[str, Any]:
        p: AdditionParams = self.params
        a = _number(rng, rng.randint(p.min_digits, p.max_digits))
        b = _number(rng, rng.randint(p.min_digits, p.max_digits))
        return {"prompt": f"What is {a} + {b}?", "answer": str(a + b), "a": a, "b": b}

    def solution(self, row: dict[str, Any], style: str = "detailed") -> str:
        self.check_style(style)
        a, b = int(row["a"]), int(row["b"])
        steps = [*column_steps(a, b), f"So {a} + {b} = {a + b}."] if style == "detailed" else []
        return self.format_solution(style, steps, str(a + b))

    def verify(self, row: dict[str, Any], answer: str | None) -> bool:
        got = parse_int(answer)
        return got is not None and got == int(row["answer"])
