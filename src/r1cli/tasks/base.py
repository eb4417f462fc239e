"""What every built-in task shares: a params dataclass, a seeded generator, a hash split and a verifier.

A task draws problems from a seeded `random.Random`; each drawn problem goes to the test split when
`md5(prompt) % 10 == 0`, to the validation split when it is 1, and to train otherwise, so the three splits are
disjoint and have the same difficulty (removing held-out prompts from a sampled train stream would skew the train
set toward rarer, harder problems). Tuning (sweeps, recipe choices, early stopping) reads validation; reported
numbers read test.
Rows carry at least `prompt` (the question text only, no template), `answer` (exact, as a string) and `task`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from r1cli.errors import ConfigError

Split = Literal["train", "validation", "test", "pretrain"]
SPLITS: tuple[str, ...] = ("train", "validation", "test")
# The embedded base's pretraining corpus: every problem but the test split's (it predates the validation split, and
# keeping it keeps the base, and every figure measured on it, unchanged; validation problems may appear in it).
PRETRAIN = "pretrain"
TEST_MODULUS = 10  # one prompt in ten is held out for test, another one in ten for validation
VALIDATION_RESIDUE = 1
# The first line of the think block names the solution style (shared by all tasks): an early token that a model
# chooses, and that a prefix can force.
STYLE_HEADS = {"detailed": "Step by step:", "terse": "All at once."}


def split_of(prompt: str) -> Split:
    """The split a prompt belongs to, from its md5 (stable across machines and Python versions)."""
    r = int.from_bytes(hashlib.md5(prompt.encode("utf-8")).digest()[:8], "big") % TEST_MODULUS
    return "test" if r == 0 else "validation" if r == VALIDATION_RESIDUE else "train"


class Task:
    """Base class. Subclasses set `name`, `params_cls`, `styles` and implement `sample`, `solution`, `verify`."""

    name: ClassVar[str] = ""
    params_cls: ClassVar[type] = object
    styles: ClassVar[tuple[str, ...]] = ("detailed",)

    def __init__(self, **params: Any) -> None:
        known = {f.name for f in dataclasses.fields(self.params_cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(
                f"task {self.name!r}: unknown param(s) {', '.join(unknown)}",
                hint=f"{self.name} takes: {', '.join(sorted(known))}",
            )
        try:
            self.params = self.params_cls(**params)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"task {self.name!r}: {e}", hint=f"{self.name} takes: {', '.join(sorted(known))}") from None

    # -- to implement ---------------------------------------------------------------------------------------
    def sample(self, rng: random.Random) -> dict[str, Any]:
        """One problem: a dict with `prompt`, `answer` and any task-specific columns (same keys every time)."""
        raise NotImplementedError

    def solution(self, row: dict[str, Any], style: str = "detailed") -> str:
        """A worked completion `<think>\\n...\\n</think>\\n<answer>\\nA\\n</answer>` for `row`."""
        raise NotImplementedError

    def verify(self, row: dict[str, Any], answer: str | None) -> bool:
        """Whether the extracted final answer (text inside `<answer>`) solves `row`."""
        raise NotImplementedError

    def style_of(self, completion: str) -> str | None:
        """Which solution style a completion follows, from the first line of its think block (None: neither)."""
        head = completion.split("<think>", 1)[-1].lstrip("\n")
        for style in self.styles:
            if head.startswith(STYLE_HEADS[style]):
                return style
        return None

    def style_prefix(self, style: str) -> str:
        """The completion prefix that forces `style` (used to measure each style's accuracy)."""
        self.check_style(style)
        return f"<think>\n{STYLE_HEADS[style]}\n"

    def format_solution(self, style: str, steps: list[str], answer: str) -> str:
        """`<think>\n<style head>\n<steps>\n</think>\n<answer>\n<answer>\n</answer>`."""
        think = "\n".join([STYLE_HEADS[style], *steps])
        return f"<think>\n{think}\n</think>\n<answer>\n{answer}\n</answer>"

    # -- shared ---------------------------------------------------------------------------------------------
    def check_style(self, style: str) -> None:
        if style not in self.styles:
            raise ConfigError(f"task {self.name!r} has no solution style {style!r}", hint=f"styles: {', '.join(self.styles)}")

    def stream(self, split: Split, seed: int) -> Iterator[dict[str, Any]]:
        """An endless deterministic stream of rows of one split (duplicates possible)."""
        if split not in (*SPLITS, PRETRAIN):
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        rng = random.Random(f"r1cli:{self.name}:{seed}")
        misses = 0
        while True:
            row = self.sample(rng)
            s = split_of(row["prompt"])
            if s == split or (split == PRETRAIN and s != "test"):
                misses = 0
                row["task"] = self.name
                yield row
            else:
                misses += 1
                if misses > 10_000:  # a tiny problem space can leave a split empty (each split takes >= 10%)
                    raise ConfigError(
                        f"task {self.name!r}: no {split} problem in 10,000 draws with {self.params}",
                        hint="widen the task's params (more terms, larger ranges)",
                    )

    def generate(self, split: Split, n: int, seed: int = 0, unique: bool = True) -> list[dict[str, Any]]:
        """`n` rows of `split`, deterministic by `seed`; with `unique` no prompt repeats.

        The same seed draws the same underlying problem stream for both splits, and the hash split sends each
        problem to exactly one of them, so train and test never share a prompt.
        """
        if n < 0:
            raise ConfigError(f"n must be >= 0, got {n}")
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        misses = 0
        for row in self.stream(split, seed):
            if len(rows) >= n:
                break
            if unique:
                if row["prompt"] in seen:
                    misses += 1
                    if misses > 20 * n + 1000:
                        raise ConfigError(
                            f"task {self.name!r}: only {len(rows)} distinct {split} problems found with {self.params}",
                            hint="ask for fewer rows, or widen the task's params (more terms, larger ranges)",
                        )
                    continue
                seen.add(row["prompt"])
            rows.append(row)
        return rows


def check(cond: bool, msg: str) -> None:
    """Params validation helper: raise ValueError(msg) (turned into a one-line ConfigError by `Task`)."""
    if not cond:
        raise ValueError(msg)


def parse_int(text: str | None) -> int | None:
    """An integer answer from text such as ' 12 ', '-3', '+4' or '12.0'; None when it is not one."""
    if text is None:
        return None
    s = text.strip().replace(" ", "").replace(",", "")
    if s.startswith("\\boxed{") and s.endswith("}"):
        s = s[7:-1]
    s = s.strip("$")
    if s.startswith("+"):
        s = s[1:]
    if s.endswith(".0"):
        s = s[:-2]
    neg = s.startswith("-")
    digits = s[1:] if neg else s
    if not digits.isdigit() or not digits.isascii():
        return None
    v = int(digits)
    return -v if neg else v
