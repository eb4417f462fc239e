"""The grading engine: one batch API that says whether answers match gold answers, used by every stage.

`grade(predictions, golds)` -> `list[bool | None]` (None: the gold answer cannot be parsed, so the item cannot be
judged). `grade_completions` first extracts the answer (`r1cli.grading.answers.extract_answer`).
`cluster_answers` groups math-equivalent answers for majority voting (cons@k).

How it is fast:
- work is deduplicated: each distinct gold is parsed once per call (and cached in the worker), each distinct
  (gold, prediction) pair is compared once;
- two exact shortcuts in this process, no sympy: two canonical integers (`42`, `-7`) are equal iff their strings
  are, and a prediction written exactly like its gold is correct iff the gold parses (math-verify compares the
  same parse with itself);
- the rest runs on a persistent pool of worker processes (created on first use, reused, stopped at exit) started
  from a forkserver that has math-verify preloaded, so a fresh worker costs milliseconds.

How it stays bounded: math-verify's own timeouts (SIGALRM) work because each worker runs items in its main
thread; on top of that the parent gives every unit of work (one parse + compare) `timeout_s` seconds and kills
the worker that overruns, scoring that unit False (or None for a gold), then restarts the rest of its work on a
fresh worker. A worker also runs under an address-space limit, so a memory bomb raises MemoryError there or kills
only that worker. A crashed worker is treated like a timed-out one. The caller never waits more than about
`timeout_s` per pathological item.

Departure from open-r1: open-r1 lets math-verify find the answer anywhere in the completion; we extract it first
with stricter rules (no answer from inside the think block, no hedging), then compare only the answer.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing as mp
import os
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from r1cli.grading.answers import extract_answer, is_canonical_int, is_multi_part, normalize_gold, too_long

DEFAULT_TIMEOUT_S = 2.0
_UNITS_PER_BATCH = 32


def default_workers() -> int:
    """Worker processes: $R1CLI_GRADE_WORKERS, else min(4, CPUs)."""
    env = os.environ.get("R1CLI_GRADE_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


def _memory_mb() -> int:
    return int(os.environ.get("R1CLI_GRADE_MEMORY_MB", "4096"))


@dataclass
class _Task:
    """Work for one worker. kind "grade": parse `head` (the gold), then compare each unit (a prediction) with
    it. kind "cluster": `head` = representatives so far, units = answers to place. A task cut short by a killed
    worker continues as a new task over the remaining units; results always go to the root task."""

    kind: str
    tid: int
    head: Any
    units: list[str]
    root: _Task | None = None  # None: this is the root
    offset: int = 0  # index of units[0] within root.units
    done: int = 0  # units of this task finished
    head_done: bool = False  # grade: the gold's parse was reported
    results: list[Any] = field(default_factory=list)  # root only: one per root unit
    gold_ok: bool | None = None  # root only (grade)
    reps: list[str] = field(default_factory=list)  # root only (cluster): representative of each cluster id

    def message(self) -> tuple:
        return (self.kind, self.tid, self.head, self.units)

    @property
    def top(self) -> _Task:
        return self if self.root is None else self.root


@dataclass
class _Worker:
    proc: Any
    conn: Connection
    tasks: deque = field(default_factory=deque)
    deadline: float = 0.0


class GradingPool:
    """Persistent worker processes; `run(tasks)` blocks until every task is finished or timed out."""

    def __init__(self, n_workers: int | None = None, memory_mb: int | None = None):
        self.n = n_workers or default_workers()
        self.memory_mb = _memory_mb() if memory_mb is None else memory_mb
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.workers: list[_Worker] = []
        self.kills = 0  # workers killed for overrunning (or found dead)
        self._next_tid = 0
        methods = mp.get_all_start_methods()
        self.ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            self.ctx.set_forkserver_preload(["r1cli.grading._mv_worker"])

    def _spawn(self) -> _Worker:
        from r1cli.grading import _mv_worker

        parent, child = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(target=_mv_worker.main, args=(child, self.memory_mb), daemon=True)
        # Hide the main module while starting: otherwise multiprocessing re-runs the caller's script (or a
        # training entry point with all its imports) in every worker.
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            proc.start()
        finally:
            if main is not None:
                sys.modules["__main__"] = main
        child.close()
        return _Worker(proc, parent)

    def _ensure(self) -> None:
        while len(self.workers) < self.n:
            self.workers.append(self._spawn())

    def _kill(self, w: _Worker) -> None:
        try:
            w.proc.kill()
            w.proc.join(timeout=1.0)
        except Exception:  # noqa: BLE001 - already gone
            pass
        with contextlib.suppress(OSError):
            w.conn.close()

    def close(self) -> None:
        if os.getpid() != self.pid:  # a forked child never stops its parent's workers
            return
        for w in self.workers:
            with contextlib.suppress(OSError):
                w.conn.send(("stop",))
        deadline = time.monotonic() + 0.5
        for w in self.workers:
            w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                self._kill(w)
            else:
                w.conn.close()
        self.workers = []

    def new_tid(self) -> int:
        self._next_tid += 1
        return self._next_tid

    # --- the scheduler -------------------------------------------------------------------------------------
    def run(self, tasks: list[_Task], timeout_s: float) -> None:
        """Run tasks to completion; results are written into each task (and its root task)."""
        if not tasks:
            return
        parse_t = max(1, int(timeout_s / 2))
        verify_t = max(1, int(timeout_s / 2))
        with self.lock:
            self._ensure()
            by_tid: dict[int, _Task] = {}
            pending: deque[_Task] = deque(tasks)
            busy: dict[Connection, _Worker] = {}

            def dispatch(w: _Worker) -> None:
                batch: list[_Task] = []
                units = 0
                while pending and (units < _UNITS_PER_BATCH or not batch):
                    t = pending.popleft()
                    batch.append(t)
                    by_tid[t.tid] = t
                    units += len(t.units) + 1
                try:
                    w.conn.send(("batch", parse_t, verify_t, [t.message() for t in batch]))
                except OSError:
                    pending.extendleft(reversed(batch))
                    replace(w, failed=False)
                    return
                w.tasks.extend(batch)
                w.deadline = time.monotonic() + timeout_s
                busy[w.conn] = w

            def replace(w: _Worker, failed: bool) -> None:
                busy.pop(w.conn, None)
                self._kill(w)
                self.kills += 1
                unfinished = list(w.tasks)
                w.tasks.clear()
                if failed and unfinished:
                    cont = _fail_current(unfinished[0], self.new_tid)
                    unfinished = ([cont] if cont is not None else []) + unfinished[1:]
                pending.extendleft(reversed(unfinished))
                i = self.workers.index(w)
                self.workers[i] = self._spawn()

            def drain(w: _Worker) -> None:
                conn = w.conn
                try:
                    while conn.poll():
                        msg = conn.recv()
                        w.deadline = time.monotonic() + timeout_s
                        _apply(by_tid[msg[1]], msg)
                        if msg[0] == "end":
                            w.tasks.popleft()
                            if not w.tasks:
                                busy.pop(conn, None)
                                return
                except (EOFError, OSError):
                    replace(w, failed=True)  # the worker died (e.g. killed by the OS for memory)

            while pending or busy:
                for w in self.workers:
                    if pending and w.conn not in busy:
                        dispatch(w)
                if not busy:
                    continue
                now = time.monotonic()
                wait_s = max(0.0, min(w.deadline for w in busy.values()) - now)
                ready = wait(list(busy), timeout=wait_s)
                for conn in ready:
                    if conn in busy:
                        drain(busy[conn])
                now = time.monotonic()
                for w in list(busy.values()):
                    if now > w.deadline and w.conn in busy:
                        drain(w)  # a result may have arrived just now
                        if w.conn in busy and time.monotonic() > w.deadline:
                            replace(w, failed=True)


def _apply(t: _Task, msg: tuple) -> None:
    top = t.top
    kind = msg[0]
    if kind == "gold":
        t.head_done = True
        top.gold_ok = bool(msg[2])
    elif kind == "v":
        top.results[t.offset + msg[2]] = bool(msg[3])
        t.done = msg[2] + 1
    elif kind == "c":
        cid = msg[3]
        if cid == len(top.reps):  # the worker made this answer a new representative
            top.reps.append(t.units[msg[2]])
        top.results[t.offset + msg[2]] = cid
        t.done = msg[2] + 1
    elif kind == "end":
        t.done = len(t.units)


def _fail_current(t: _Task, new_tid: Any) -> _Task | None:
    """The worker running `t` overran or died: fail the unit it was on and return a task for the rest."""
    top = t.top
    if t.kind == "grade":
        if not t.head_done:  # the gold itself is pathological: nothing compared with it can be judged
            top.gold_ok = False
            return None
        top.results[t.offset + t.done] = False
    else:  # an answer that could not be compared in time gets a cluster of its own
        top.reps.append(t.units[t.done])
        top.results[t.offset + t.done] = len(top.reps) - 1
    start = t.done + 1
    if start >= len(t.units):
        return None
    head = t.head if t.kind == "grade" else list(top.reps)
    return _Task(t.kind, new_tid(), head, t.units[start:], root=top, offset=t.offset + start)


# --- process-wide pool ----------------------------------------------------------------------------------------
_POOL: GradingPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool() -> GradingPool:
    """The process-wide pool (created lazily; a forked child makes its own instead of sharing the parent's)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.pid != os.getpid():
            _POOL = GradingPool()
            atexit.register(_POOL.close)
        return _POOL


def _after_fork_in_child() -> None:
    """A forked child (e.g. a fork-started data loader worker) must not use its parent's pool or forkserver:
    it makes its own on first use. multiprocessing's forkserver singleton cannot be used from a forked child
    (it waits on a process that is not the child's), so a fresh one replaces it."""
    global _POOL
    if _POOL is None:
        return
    _POOL = None
    from multiprocessing import forkserver as fs

    fresh = fs.ForkServer()
    fs._forkserver = fresh
    fs.ensure_running = fresh.ensure_running
    fs.get_inherited_fds = fresh.get_inherited_fds
    fs.connect_to_new_process = fresh.connect_to_new_process
    fs.set_forkserver_preload = fresh.set_forkserver_preload


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def shutdown() -> None:
    """Stop the worker processes now (they are also stopped at exit)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and _POOL.pid == os.getpid():
            _POOL.close()
        _POOL = None


# --- public API -----------------------------------------------------------------------------------------------
@dataclass
class GradeStats:
    """What the last `grade` call did (for benchmarks and logs)."""

    items: int = 0
    shortcut: int = 0  # decided in this process without sympy
    compared: int = 0  # distinct (gold, prediction) pairs sent to workers
    golds: int = 0  # distinct golds parsed by workers
    seconds: float = 0.0


last_stats = GradeStats()


def _norm_pred(p: Any) -> str | None:
    if p is None:
        return None
    s = str(p).strip()
    if not s or too_long(s):
        return None
    return s


def grade(
    predictions: Sequence[str | None],
    golds: Sequence[Any],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    pool: GradingPool | None = None,
) -> list[bool | None]:
    """Whether each extracted prediction is math-equivalent to its gold answer (math-verify semantics).

    `predictions[i]` is an extracted answer (None: the completion had none -> False; several boxes
    `\\boxed{a}, \\boxed{b}` are a multi-part answer, right only for a gold with several values); `golds[i]` a
    gold answer (a full solution is read by math-verify's own extraction). Returns True/False, or None when the
    gold cannot be parsed. Each pathological item costs at most about `timeout_s` seconds and scores False.

    >>> grade(["\\\\frac12", "0.5", "1/2", "3", None], ["1/2"] * 5)
    [True, True, True, False, False]
    """
    if len(predictions) != len(golds):
        raise ValueError(f"grade: {len(predictions)} predictions but {len(golds)} gold answers")
    t0 = time.perf_counter()
    stats = GradeStats(items=len(predictions))
    out: list[bool | None] = [None] * len(predictions)
    gold_s = [normalize_gold(g) for g in golds]
    pred_s = [_norm_pred(p) for p in predictions]
    # gold -> distinct preds needing sympy; items waiting on the gold's parse status
    need: dict[str, dict[str, int]] = {}
    waiting: list[tuple[int, str, str | None]] = []  # (index, gold, pred or None = only needs gold status)
    gold_known: dict[str, bool] = {}
    for i, (g, p) in enumerate(zip(gold_s, pred_s, strict=True)):
        if g is None:
            out[i] = None
            stats.shortcut += 1
            continue
        if is_canonical_int(g):
            gold_known[g] = True
            if p is None or is_canonical_int(p) or p == g:
                out[i] = p == g
                stats.shortcut += 1
                continue
        if p is None or (p == g and not is_multi_part(p)):
            waiting.append((i, g, None if p is None else p))
            need.setdefault(g, {})
            stats.shortcut += 1
            continue
        preds = need.setdefault(g, {})
        preds.setdefault(p, len(preds))
        waiting.append((i, g, p))
    tasks: list[_Task] = []
    todo = [(g, preds) for g, preds in need.items() if preds or g not in gold_known]
    if todo:
        pool = pool or get_pool()
        for g, preds in todo:
            units = list(preds)
            tasks.append(_Task("grade", pool.new_tid(), g, units, results=[False] * len(units)))
        stats.golds = len(tasks)
        stats.compared = sum(len(t.units) for t in tasks)
        pool.run(tasks, timeout_s)
    by_gold = {t.head: t for t in tasks}
    for i, g, p in waiting:
        t = by_gold.get(g)
        ok = gold_known.get(g, False) if t is None else bool(t.gold_ok)
        if not ok:
            out[i] = None
        elif p is None:
            out[i] = False
        elif p in need[g]:
            out[i] = bool(t.results[need[g][p]]) if t is not None else False
        else:  # written exactly like its gold
            out[i] = p == g
    stats.seconds = time.perf_counter() - t0
    global last_stats
    last_stats = stats
    return out


def grade_completions(
    completions: Sequence[Any],
    golds: Sequence[Any],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    pool: GradingPool | None = None,
    require_think: bool = False,
) -> list[bool | None]:
    """`grade` after extracting each completion's final answer with `extract_answer` (strings or TRL
    conversational completions)."""
    answers = [extract_answer(c, require_think=require_think) for c in completions]
    return grade(answers, golds, timeout_s=timeout_s, pool=pool)


def cluster_answers_many(
    groups: Sequence[Sequence[str | None]], *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[list[int | None]]:
    """`cluster_answers` for many problems at once (one task per problem, run in parallel)."""
    norm = [[_norm_pred(a) for a in group] for group in groups]
    pool = None
    tasks: list[_Task | None] = []
    for group in norm:
        distinct = list(dict.fromkeys(a for a in group if a is not None))
        if len(distinct) <= 1 or all(is_canonical_int(a) for a in distinct):
            tasks.append(None)  # ids follow string identity exactly
            continue
        pool = pool or get_pool()
        tasks.append(_Task("cluster", pool.new_tid(), [], distinct, results=[None] * len(distinct)))
    real = [t for t in tasks if t is not None]
    if real and pool is not None:
        pool.run(real, timeout_s)
    result: list[list[int | None]] = []
    for group, t in zip(norm, tasks, strict=True):
        if t is None:
            ids = {a: k for k, a in enumerate(dict.fromkeys(a for a in group if a is not None))}
            result.append([None if a is None else ids[a] for a in group])
        else:
            ids = dict(zip(t.units, t.results, strict=True))
            # renumber clusters in order of first appearance
            order: dict[int, int] = {}
            out: list[int | None] = []
            for a in group:
                if a is None:
                    out.append(None)
                else:
                    out.append(order.setdefault(ids[a], len(order)))
            result.append(out)
    return result


def cluster_answers(
    answers: Sequence[str | None], *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[int | None]:
    """Cluster ids (0, 1, … in order of first appearance) such that math-equivalent answers share an id;
    None for a missing answer. For majority voting: the most frequent id is the consensus answer.

    >>> cluster_answers(["\\\\frac12", "0.5", "1/2", "3", None])
    [0, 0, 0, 1, None]
    """
    return cluster_answers_many([answers], timeout_s=timeout_s)[0]


def answers_equivalent(a: str | None, b: str | None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether two extracted answers are math-equivalent (symmetric; False if either is missing)."""
    ids = cluster_answers([a, b], timeout_s=timeout_s)
    return ids[0] is not None and ids[0] == ids[1]


def majority_answer(answers: Sequence[str | None], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> str | None:
    """The consensus answer (first member of the largest cluster; ties -> the cluster seen first)."""
    ids = cluster_answers(answers, timeout_s=timeout_s)
    counts: dict[int, int] = {}
    for c in ids:
        if c is not None:
            counts[c] = counts.get(c, 0) + 1
    if not counts:
        return None
    best = max(counts, key=lambda c: (counts[c], -c))
    return next(str(a).strip() for a, c in zip(answers, ids, strict=True) if c == best)


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "GradingPool",
    "answers_equivalent",
    "cluster_answers",
    "cluster_answers_many",
    "extract_answer",
    "get_pool",
    "grade",
    "grade_completions",
    "majority_answer",
    "shutdown",
]
