"""Helpers shared by the reliability suite: run `r1` in-process (one pytest process pays the imports once) or as a
subprocess, hash a folder tree, and check the one-line error contract."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def r1_inproc(*args: str) -> Result:
    """`r1 ARGS` through the CLI's real error boundary (`r1cli.cli.main`), stdout/stderr captured."""
    from r1cli.cli import main

    old = os.environ.pop("R1CLI_DEBUG", None)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.environ.pop("R1CLI_DEBUG", None)
        if old is not None:
            os.environ["R1CLI_DEBUG"] = old
    return Result(code, out.getvalue(), err.getvalue())


def r1_subprocess(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
    e = dict(os.environ)
    e.pop("R1CLI_DEBUG", None)
    e.setdefault("OMP_NUM_THREADS", "1")
    e.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    e.update(env or {})
    r = subprocess.run([sys.executable, "-m", "r1cli", *map(str, args)], capture_output=True, text=True, env=e,
                       timeout=timeout)
    return Result(r.returncode, r.stdout, r.stderr)


def tree_hash(*roots: Path) -> dict[str, str]:
    """sha256 of every file (and the set of folders) under `roots`, hidden files included."""
    out: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            continue
        for p in sorted(root.rglob("*")):
            key = str(p)
            if p.is_dir():
                out[key] = "<dir>"
            elif p.is_file():
                out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def error_lines(r: Result) -> list[str]:
    """The non-empty stderr lines; asserts the one-line error contract (error line, optional hint, no traceback)."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in r.stderr, r.stderr
    errs = [ln for ln in lines if ln.startswith("error:")]
    assert len(errs) == 1, f"expected one error line, got:\n{r.stderr}"
    i = lines.index(errs[0])
    tail = lines[i + 1:]
    assert len(tail) <= 1 and all(t.startswith("hint:") for t in tail), f"lines after the error:\n{r.stderr}"
    return lines


POLL = 0.005  # seconds between checks of a kill condition


def start_r1(args: list, log: Path) -> subprocess.Popen:
    """`python -m r1cli ARGS` in its own process group (so a kill also takes its reward workers), output to `log`."""
    env = dict(os.environ)
    env.pop("R1CLI_DEBUG", None)
    env.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", R1CLI_QUIET="1")
    f = open(log, "ab")  # noqa: SIM115  (the child holds it; closed when the test's tmp dir goes)
    return subprocess.Popen([sys.executable, "-m", "r1cli", *map(str, args)], stdout=f, stderr=f, env=env,
                            start_new_session=True)


def kill_when(proc: subprocess.Popen, cond, rng: random.Random, timeout: float = 300.0, jitter: float = 0.03) -> bool:
    """SIGKILL `proc`'s process group once `cond()` holds, after a random 0-`jitter` s; False if it exited first."""
    import pytest

    t0 = time.monotonic()
    while proc.poll() is None:
        if cond():
            time.sleep(rng.uniform(0.0, jitter))
            if proc.poll() is not None:
                break
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        if time.monotonic() - t0 > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"`r1 {' '.join(map(str, proc.args[3:5]))}` did not reach the kill moment in time")
        time.sleep(POLL)
    return False
