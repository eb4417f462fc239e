"""Helpers shared by the reliability suite: run `r1` in-process (building artifacts), as many commands in one fresh
driver process (`_driver.py`), or as a process of its own, the last two with the network fenced off
(`tests/netguard.py`); hash a folder tree; check the one-line error contract."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    net: list[str] = field(default_factory=list)  # network attempts (fenced runs only)


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


def _env(offline: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARS and k != "R1CLI_DEBUG"}
    e.setdefault("OMP_NUM_THREADS", "1")
    e.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if offline:
        e["HF_HUB_OFFLINE"] = "1"
    e.update(extra or {})
    return e


def r1_subprocess(*args: str, env: dict[str, str] | None = None, offline: bool = False,
                  timeout: float = 300) -> Result:
    """`r1 ARGS` in a fresh process of its own with the network fenced off (`tests/netguard.py`)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        netlog = Path(d) / "net.log"
        r = subprocess.run([sys.executable, str(TESTS / "netguard.py"), *map(str, args)], capture_output=True,
                           text=True, env=_env(offline, {**(env or {}), "R1CLI_NETLOG": str(netlog)}),
                           timeout=timeout)
        net = netlog.read_text().splitlines() if netlog.exists() else []
    return Result(r.returncode, r.stdout, r.stderr, net)


def r1_driver(cases: list[dict], *, roots: list[Path], workdir: Path, offline: bool,
              timeout: float = 1800) -> dict[str, dict]:
    """Run `cases` ([{id, argv}]) one after the other in one fresh interpreter (`_driver.py`); {id: result}."""
    spec, results = workdir / "driver-spec.json", workdir / "driver-results.json"
    spec.write_text(json.dumps({"roots": [str(r) for r in roots], "cases": cases}))
    r = subprocess.run([sys.executable, str(Path(__file__).with_name("_driver.py")), str(spec), str(results)],
                       capture_output=True, text=True, env=_env(offline), timeout=timeout)
    assert r.returncode == 0 and results.exists(), f"the driver failed:\n{r.stdout}\n{r.stderr}"
    return json.loads(results.read_text())


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


class NoisyStderr(AssertionError):
    """stderr holds more than the error line and its hint (a known leak is marked xfail with raises=NoisyStderr,
    so the case's other checks still fail it for real)."""


def error_line(r: Result) -> str:
    """The `error:` line with its hint, wherever they are in stderr; no traceback."""
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errs = [i for i, ln in enumerate(lines) if ln.startswith("error: ")]
    assert len(errs) == 1, f"expected one error line, got:\n{r.stderr}"
    return "\n".join(lines[errs[0]:errs[0] + 2])


def assert_only_error(r: Result) -> None:
    """The whole stderr is one `error:` line and at most one `hint:` line: no library warning or log record, no
    progress bar, no log line of the stage."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    ok = bool(lines) and lines[0].startswith("error: ") and len(lines) <= 2
    if not (ok and all(ln.startswith("hint: ") for ln in lines[1:])):
        raise NoisyStderr(f"stderr is not just the error (+ hint):\n{r.stderr}")


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
