"""`code`: the fraction of a dataset row's test cases that the completion's Python program passes.

The program is the last fenced Python block (```` ```python ````, ```` ```py ```` or a bare ```` ``` ````) of the
answer: the `<answer>` tag's content if present (raw code is accepted there), else the text after `</think>`, else
the whole completion (nothing from inside an unclosed think block). It runs in `r1cli.grading.sandbox`, one
sandbox per completion, one forked process per test case.

Test cases come from the dataset row, column `tests` (param `tests_column`), or open-r1's `verification_info`,
in any of these forms (a JSON string of them is decoded first):
- `[{"input": "1 2\\n", "output": "3\\n"}, …]` or `{"test_cases": [...]}` (open-r1): stdin -> stdout, compared
  token by token (param `compare`);
- `{"inputs": [...], "outputs": [...]}` (APPS; with `"fn_name"` the inputs are argument lists of that function);
- `["assert add(1, 2) == 3", …]` (MBPP/HumanEval style). `assert CALL == LITERAL` is run as CALL and its value
  compared outside the sandbox with the literal, so neither the expected value nor the comparison is exposed to
  the program (an object whose `__eq__` always returns True gains nothing). Other asserts pass on exit status 0:
  a hostile program can forge that (e.g. `os._exit(0)`); prefer the first forms for RL.

Score: passed / tests (at most `max_tests` per row). No program found -> 0.0. No tests in the row, or the sandbox
itself failed -> None.

Example::

    >>> fn = get_reward("code")
    >>> fn(["```python\\na, b = map(int, input().split())\\nprint(a + b)\\n```"],
    ...    tests=[[{"input": "1 2\\n", "output": "3\\n"}, {"input": "2 2\\n", "output": "5\\n"}]])
    [0.5]
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from r1cli.grading.sandbox import SandboxLimits, TestRun, run_tests
from r1cli.prompts import THINK_CLOSE, THINK_OPEN, completion_text, extract_answer_tag, split_reasoning

_FENCE = re.compile(r"```")
_PY_TAGS = {"", "python", "py", "python3", "py3"}
_MAX_FENCES = 2000


@dataclass
class Case:
    """One test case: what the sandbox runs, and what we compare its result with (never sent to it)."""

    run: dict[str, str]
    expected: Any = None
    mode: Literal["stdout", "value", "exit"] = "stdout"


def extract_code(completion: Any) -> str | None:
    """The program of a completion (see module doc), or None."""
    text = completion_text(completion)
    if not text or (THINK_OPEN in text and THINK_CLOSE not in text):
        return None
    tag = extract_answer_tag(text)
    region = tag if tag is not None else (split_reasoning(text)[1] if THINK_CLOSE in text else text)
    fences = [m.start() for _, m in zip(range(_MAX_FENCES), _FENCE.finditer(region), strict=False)]
    best = None
    for a, b in zip(fences[0::2], fences[1::2], strict=False):
        eol = region.find("\n", a + 3, b)
        if eol < 0:
            continue
        info = region[a + 3 : eol].strip().lower()
        if info in _PY_TAGS:
            best = region[eol + 1 : b]
    if best is not None:
        return best
    if tag is not None and "```" not in tag and tag.strip():
        return tag
    return None


def _assert_case(stmt: str) -> Case:
    try:
        node = ast.parse(stmt.strip(), mode="exec")
        a = node.body[0] if len(node.body) == 1 else None
    except (SyntaxError, ValueError, RecursionError):
        a = None
    if (
        isinstance(a, ast.Assert)
        and isinstance(a.test, ast.Compare)
        and len(a.test.ops) == 1
        and isinstance(a.test.ops[0], ast.Eq)
    ):
        left, right = a.test.left, a.test.comparators[0]
        for call, lit in ((left, right), (right, left)):
            try:
                expected = ast.literal_eval(lit)
            except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
                continue
            return Case({"kind": "call", "expr": ast.unparse(call)}, expected, "value")
    return Case({"kind": "assert", "stmt": stmt}, None, "exit")


def parse_tests(obj: Any, max_tests: int = 50) -> list[Case]:
    """The test cases of one dataset row, in any supported form (ValueError for an unknown one)."""
    if obj is None:
        return []
    if isinstance(obj, str):
        s = obj.strip()
        if not s:
            return []
        try:
            return parse_tests(json.loads(s), max_tests)
        except ValueError:
            lines = [ln for ln in s.splitlines() if ln.strip().startswith("assert ")]
            if not lines:
                raise ValueError("tests string is neither JSON nor assert lines") from None
            return [_assert_case(ln) for ln in lines[:max_tests]]
    if isinstance(obj, dict):
        if "test_cases" in obj:
            return parse_tests(obj["test_cases"], max_tests)
        if "inputs" in obj and "outputs" in obj:
            ins, outs = list(obj["inputs"]), list(obj["outputs"])
            fn = obj.get("fn_name")
            cases = []
            for i, o in list(zip(ins, outs, strict=False))[:max_tests]:
                if fn:
                    args = i if isinstance(i, list) else [i]
                    cases.append(Case({"kind": "call", "expr": f"{fn}(*{args!r})"}, o, "value"))
                else:
                    cases.append(Case({"kind": "stdio", "input": str(i)}, str(o), "stdout"))
            return cases
        raise ValueError(f"unknown tests mapping with keys {sorted(obj)[:6]}")
    if isinstance(obj, (list, tuple)):
        cases = []
        for t in list(obj)[:max_tests]:
            if isinstance(t, str):
                cases.append(_assert_case(t))
            elif isinstance(t, dict) and "input" in t and "output" in t:
                if t.get("type", "stdin_stdout") != "stdin_stdout":
                    raise ValueError(f"unsupported test type {t.get('type')!r} (only stdin_stdout)")
                cases.append(Case({"kind": "stdio", "input": str(t["input"])}, str(t["output"]), "stdout"))
            else:
                raise ValueError(f"unknown test case {str(t)[:80]!r}")
        return cases
    raise ValueError(f"unknown tests value of type {type(obj).__name__}")


def _plain(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def passed(case: Case, run: TestRun, compare: str = "tokens") -> bool:
    """Whether one sandboxed run passes its case (decided here, outside the sandbox)."""
    if run.status != "ok":
        return False
    if case.mode == "exit":
        return run.exit == 0
    if case.mode == "value":
        if run.value is None or run.truncated:
            return False
        try:
            got = ast.literal_eval(run.value)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            return run.value == repr(case.expected)
        exp = _plain(case.expected)
        got = _plain(got)
        return got == exp or [got] == exp  # APPS wraps single outputs in a list
    if run.truncated:
        return False
    want = str(case.expected)
    if compare == "exact":
        return run.stdout == want
    if compare == "lines":
        norm = lambda s: [ln.rstrip() for ln in s.rstrip().splitlines()]  # noqa: E731
        return norm(run.stdout) == norm(want)
    return run.stdout.split() == want.split()


@dataclass
class CodeParams:
    """Params of `code`."""

    tests_column: str = field(
        default="tests",
        metadata={"help": "Dataset column with the test cases (also reads verification_info)."},
    )
    timeout_s: float = field(default=2.0, metadata={"help": "Wall-clock limit per test case (seconds)."})
    cpu_s: int = field(default=2, metadata={"help": "CPU seconds per process."})
    memory_mb: int = field(default=1024, metadata={"help": "Address space per process, MiB."})
    max_processes: int = field(default=32, metadata={"help": "Processes the program may have at once."})
    output_bytes: int = field(
        default=1 << 20, metadata={"help": "Stdout cap per test (bytes); more is a failure."}
    )
    max_tests: int = field(default=50, metadata={"help": "Test cases run per row (the first N)."})
    compare: Literal["tokens", "lines", "exact"] = field(
        default="tokens",
        metadata={"help": "Stdout comparison: whitespace-separated tokens, lines, or exact bytes."},
    )
    isolation: Literal["auto", "bwrap", "basic"] = field(
        default="auto",
        metadata={"help": "Sandbox isolation: auto (bwrap if it works, else basic), bwrap or basic."},
    )
    workers: int = field(default=0, metadata={"help": "Sandboxes run at once (0: the number of CPUs)."})

    def __post_init__(self) -> None:
        if self.max_tests < 1:
            raise ValueError(f"max_tests must be >= 1, got {self.max_tests}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        self.limits()  # validates the sandbox limits

    def limits(self) -> SandboxLimits:
        return SandboxLimits(
            timeout_s=self.timeout_s,
            cpu_s=self.cpu_s,
            memory_mb=self.memory_mb,
            max_processes=self.max_processes,
            output_bytes=self.output_bytes,
            isolation=self.isolation,
        )


def score_program(code: str | None, cases: list[Case], p: CodeParams) -> float | None:
    """Fraction of `cases` that `code` passes (None: no cases, or the sandbox failed)."""
    if not cases:
        return None
    if code is None or not code.strip():
        return 0.0
    runs = run_tests(code, [c.run for c in cases], p.limits())
    if all(r.status == "sandbox-error" for r in runs):
        return None
    return sum(passed(c, r, p.compare) for c, r in zip(cases, runs, strict=True)) / len(cases)


def build_code(p: CodeParams):
    limits = p.limits()
    if limits.isolation == "bwrap":
        from r1cli.grading.sandbox import probe

        if probe().bwrap is None:
            raise ValueError(
                "isolation 'bwrap' requested but bwrap does not work here: " + "; ".join(probe().notes)
            )

    def code(completions: Sequence[Any], **columns: Any) -> list[float | None]:
        rows = columns.get(p.tests_column)
        if rows is None:
            rows = columns.get("verification_info")
        if rows is None:
            raise ValueError(
                f"code reward needs test cases in dataset column {p.tests_column!r} (or verification_info)"
            )
        jobs = []
        for c, row in zip(completions, rows, strict=True):
            try:
                cases = parse_tests(row, p.max_tests)
            except ValueError:
                cases = []
            jobs.append((extract_code(c), cases))
        workers = p.workers or os.cpu_count() or 1
        if len(jobs) <= 1 or workers == 1:
            return [score_program(src, cases, p) for src, cases in jobs]
        with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as ex:
            return list(ex.map(lambda job: score_program(job[0], job[1], p), jobs))

    return code
