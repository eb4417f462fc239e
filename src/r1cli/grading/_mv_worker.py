"""The grading worker: a process that parses and compares answers with math-verify.

Runs in its own process, in that process's main thread, so math-verify's SIGALRM timeouts work. The parent
(`r1cli.grading.engine`) also enforces its own per-item deadline and kills a worker that overruns it (sympy can
sit in C code where no signal handler runs, e.g. evaluating `9^{9^{9^9}}`), so these timeouts are the first line
of defence, not the only one. This module is preloaded in the forkserver: a fresh worker forks in milliseconds
with sympy and the LaTeX parser already imported.

Protocol (tuples over a `multiprocessing` pipe):
- parent -> worker: `("batch", parse_timeout, verify_timeout, tasks)`, `("stop",)`
  - `("grade", tid, gold, preds)`: parse `gold` once, then compare each prediction with it.
  - `("cluster", tid, reps, answers)`: assign each answer to the first equivalent representative, or make it a
    new representative.
- worker -> parent, one message per unit of work, so the parent knows which unit is running:
  `("gold", tid, ok)`, `("v", tid, j, verdict)`, `("c", tid, j, cluster)`, `("end", tid)`.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
from collections import OrderedDict
from typing import Any

from math_verify import parse, verify
from sympy import FiniteSet, Interval, Tuple
from sympy.core.relational import Relational

from r1cli.grading.answers import fallback_input, is_canonical_int, is_multi_part, is_number, parse_inputs

_CACHE_SIZE = 4096

# Typical answer shapes. Parsed once at import (in the forkserver, before any worker forks), so that ANTLR's
# adaptive-prediction DFA is already built in every worker: a cold worker parses ~25% slower.
_WARMUP = (
    "42",
    "-7",
    "3.5",
    "\\frac{3}{4}",
    "-\\dfrac{1}{2}",
    "2\\sqrt{3}",
    "\\frac{\\sqrt{2}}{2}",
    "5\\pi",
    "\\pi/3",
    "(3, -2)",
    "\\left( 3, \\frac{\\pi}{2} \\right)",
    "[2, 5)",
    "(-\\infty, 0] \\cup (1, \\infty)",
    "\\{1, 2, 3\\}",
    "x = 4",
    "y = 2x + 3",
    "x^2 + 2x + 1",
    "3x - 2y + z = 0",
    "a < 3",
    "-2 \\le x \\le 5",
    "\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}",
    "\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}",
    "\\text{(C)}",
    "\\text{Evelyn}",
    "30^\\circ",
    "25\\%",
    "\\$18.90",
    "4210_{5}",
    "1 \\pm \\sqrt{5}",
    "\\sin x",
    "e^{2}",
    "10^{6}",
    "2 \\cdot 3",
    "4 \\times 10^3",
    "|x - 1|",
    "\\log_2 8",
    "\\binom{5}{2}",
    "0.\\overline{3}",
    "1,000",
)


def _quiet_logs() -> None:
    for name in ("math_verify", "latex2sympy2_extended", "sympy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _parse(text: str, timeout: int) -> list[Any]:
    """All readings of `text` (see `r1cli.grading.answers.parse_inputs`), pooled: verify matches any pair."""
    out: list[Any] = []
    for inp in parse_inputs(text):
        out.extend(_parse_one(inp, timeout))
    if not out:
        fallback = fallback_input(text)
        if fallback is not None:
            out = _parse_one(fallback, timeout)
    return out


def _parse_one(inp: str, timeout: int) -> list[Any]:
    try:
        return parse(inp, parsing_timeout=timeout)
    except BaseException as e:  # noqa: BLE001 - a worker must survive any failure of one item
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return []


def _several(parsed: list[Any], kinds: tuple[type, ...]) -> bool:
    """Whether a reading is a collection of `kinds` with two or more members, also as the right side of an
    equation (`n = 1, 2, 3`)."""
    for x in parsed:
        if isinstance(x, Relational):
            x = x.rhs
        if isinstance(x, kinds) and len(x) > 1:
            return True
    return False


def _gold_has_several_values(g: list[Any]) -> bool:
    """A set (`\\{1, 2\\}`, `(2, 2), (6, 2)`, `\\pm 3`) or a tuple (`(7, 6)`: its parts may be given one by one);
    also `(1, 3)`, which math-verify reads as an open interval but compares with {1, 3} as a pair."""
    pair = any(isinstance(x, Interval) and x.left_open and x.right_open for x in g)
    return pair or _several(g, (FiniteSet, Tuple))


def _hedges(pred: str, p: list[Any]) -> bool:
    """Whether a prediction offers several values: several different boxes, or a reading that is a set (`1 or 2`,
    `$1$ and $2$`); a bare number's list reading (`1,5`) is another reading of the one number."""
    return is_multi_part(pred) or (not is_number(pred) and _several(p, (FiniteSet,)))


def _verify(gold: list[Any], pred: list[Any], timeout: int) -> bool:
    if not gold or not pred:
        return False
    try:
        return bool(verify(gold, pred, timeout_seconds=timeout))
    except BaseException as e:  # noqa: BLE001
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return False


def _equivalent(a: str, pa: list[Any], b: str, pb: list[Any], timeout: int) -> bool:
    if a == b:
        return bool(pa)
    if is_canonical_int(a) and is_canonical_int(b):
        return False
    return _verify(pa, pb, timeout) or _verify(pb, pa, timeout)


def main(conn: Any, memory_mb: int) -> None:
    """Worker loop: serve batches until "stop" or until the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _quiet_logs()
    if memory_mb > 0:
        try:
            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError):
            pass
    cache: OrderedDict[str, list[Any]] = OrderedDict()

    def parsed(text: str, timeout: int) -> list[Any]:
        got = cache.get(text)
        if got is None:
            got = _parse(text, timeout)
            cache[text] = got
            if len(cache) > _CACHE_SIZE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(text)
        return got

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        _, parse_timeout, verify_timeout, tasks = msg
        try:
            for task in tasks:
                kind, tid = task[0], task[1]
                if kind == "grade":
                    gold, preds = task[2], task[3]
                    g = parsed(gold, parse_timeout)
                    conn.send(("gold", tid, bool(g)))
                    several = _gold_has_several_values(g)
                    for j, pred in enumerate(preds):
                        # several values count only as the parts of a gold with several values: against a
                        # single-valued one they are a hedge between candidates, however math-verify compares them
                        ok = False
                        if g and (several or not is_multi_part(pred)):
                            p = parsed(pred, parse_timeout)
                            ok = (several or not _hedges(pred, p)) and _verify(g, p, verify_timeout)
                        conn.send(("v", tid, j, ok))
                elif kind == "cluster":
                    reps: list[str] = list(task[2])
                    parsed_reps = [parsed(r, parse_timeout) for r in reps]
                    for j, a in enumerate(task[3]):
                        pa = parsed(a, parse_timeout)
                        cid = next(
                            (
                                k
                                for k, (r, pr) in enumerate(zip(reps, parsed_reps, strict=True))
                                if _equivalent(r, pr, a, pa, verify_timeout)
                            ),
                            None,
                        )
                        if cid is None:
                            reps.append(a)
                            parsed_reps.append(pa)
                            cid = len(reps) - 1
                        conn.send(("c", tid, j, cid))
                conn.send(("end", tid))
        except (BrokenPipeError, EOFError, OSError):
            return


# Comparisons of typical kinds, run once at import too: sympy builds its simplification machinery on the first
# call (a first equation comparison took 1 s, a second 0.4 s), which would eat a fresh worker's verify budget.
_WARMUP_PAIRS = (
    ("2x + 3y = 6", "y = 2 - \\frac{2x}{3}"),
    ("x < 3", "3 > x"),
    ("\\frac{1}{2}", "0.5"),
    ("\\{1, 2\\}", "2, 1"),
    ("[2, 5)", "[2, 5)"),
)


def _warm_up() -> None:
    _quiet_logs()
    for text in _WARMUP:
        _parse(text, 0)
    for a, b in _WARMUP_PAIRS:
        _verify(_parse(a, 0), _parse(b, 0), 0)


_warm_up()

if __name__ == "__main__":  # pragma: no cover - started through multiprocessing only
    raise SystemExit(f"{os.path.basename(__file__)} is started by r1cli.grading.engine")
