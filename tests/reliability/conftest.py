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


def r1_run(args: list, log: Path, timeout: float = 300.0) -> None:
    """`r1 ARGS` run to the end as `start_r1` runs it: the uninterrupted reference of a kill test whose weights are
    compared (float sums, hence trained weights, differ in the 5th digit with the torch thread count)."""
    proc = start_r1(args, log)
    try:
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 0, log.read_text()[-3000:]


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


# ---------------------------------------------------------------------------------------------- kill -9 at checkpoints

MARKER = ".r1cli-complete"  # r1cli.runs.checkpoints.MARKER: written only after a checkpoint's save finished


def ckpt_steps(root: Path, complete: bool = False) -> list[int]:
    """Steps of the `checkpoint-N` folders under `root` (only those with the completion marker if `complete`)."""
    if not root.is_dir():
        return []
    return sorted(int(p.name.split("-")[1]) for p in root.glob("checkpoint-*")
                  if not complete or (p / MARKER).is_file())


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSONL file a killed process appended to (a line cut by the kill is skipped)."""
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by the kill
            continue
    return out


class LoggedSteps:
    """The steps a process logged to a stage's metrics.jsonl (records holding `key`), from `mark()` on."""

    def __init__(self, path: Path, key: str):
        self.path, self.key, self.n = path, key, 0

    def all(self) -> list[int]:
        return [r["step"] for r in read_jsonl(self.path) if self.key in r]

    def mark(self) -> None:
        self.n = len(self.all())

    def since(self) -> list[int]:
        return self.all()[self.n:]


class SavedSteps:
    """The checkpoints a process wrote (new, or a file in it rewritten) since `mark()`, for stages without a
    metrics.jsonl: with save_steps=1 and no save_total_limit these are the steps it trained."""

    def __init__(self, root: Path):
        self.root, self.snap = root, {}

    def _stamps(self) -> dict[int, int]:
        return {s: max((f.stat().st_mtime_ns for f in (self.root / f"checkpoint-{s}").rglob("*")), default=0)
                for s in ckpt_steps(self.root)}

    def mark(self) -> None:
        self.snap = self._stamps()

    def since(self) -> list[int]:
        return sorted(s for s, t in self._stamps().items() if self.snap.get(s) != t)


def plant_half_written(root: Path) -> int:
    """A half-written checkpoint newer than the last complete one (a copy of it, one step higher, no marker): what a
    kill during a save leaves. Returns the last complete step, the one a resume must start from."""
    import shutil

    last = max(ckpt_steps(root, complete=True))
    fake = root / f"checkpoint-{last + 1}"
    if fake.exists():
        shutil.rmtree(fake)
    shutil.copytree(root / f"checkpoint-{last}", fake)
    (fake / MARKER).unlink()
    state = json.loads((fake / "trainer_state.json").read_text())
    state["global_step"] = last + 1
    (fake / "trainer_state.json").write_text(json.dumps(state))
    return last


def kill_at_checkpoints(argv: list, ckpt_root: Path, out: Path, log: Path, rng: random.Random, steps,
                        early: int = 2, late: int = 6) -> tuple[dict, list[tuple[int, list[int]]]]:
    """The three-moment kill of a checkpointing stage, then a final `--resume` in-process. `argv` (without
    --resume) writes checkpoints every step under `ckpt_root` and its run to `out`; `steps` (LoggedSteps or
    SavedSteps) says which steps a process trained. Moments: right after checkpoint-`early` is complete; as soon
    as a checkpoint folder newer than those present appears (usually mid-save, killed without delay); right after
    checkpoint-`late` is complete, then a half-written checkpoint is planted (`plant_half_written`). Returns the
    final run's manifest (status complete) and, per resumed process, (the last complete checkpoint when it started,
    its steps)."""
    import pytest

    def new_folder(present):
        return lambda: bool(set(ckpt_steps(ckpt_root)) - present)

    segments = []
    moments = [(f"after checkpoint-{early} is complete", lambda: early in ckpt_steps(ckpt_root, complete=True)),
               ("a new checkpoint folder appears", None),
               (f"after checkpoint-{late} is complete", lambda: late in ckpt_steps(ckpt_root, complete=True))]
    for i, (name, cond) in enumerate(moments):
        start = max(ckpt_steps(ckpt_root, complete=True), default=0)
        steps.mark()
        proc = start_r1(argv + (["--resume"] if i else []), log)
        killed = kill_when(proc, cond or new_folder(set(ckpt_steps(ckpt_root))), rng,
                           jitter=0.0 if cond is None else 0.03)  # mid-save: no delay
        if not killed:
            pytest.fail(f"`r1 {argv[0]}` finished before the kill moment {name!r}:\n{log.read_text()[-3000:]}")
        assert not (out / "manifest.json").exists(), "a killed run left a manifest"
        if i:
            segments.append((start, steps.since()))
    last = plant_half_written(ckpt_root)
    assert last >= late
    steps.mark()
    r = r1_inproc(*argv, "--resume")
    assert r.code == 0, r.stderr
    segments.append((last, steps.since()))
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete"
    return man, segments


def assert_counter_continues(segments: list[tuple[int, list[int]]], total: int) -> None:
    """Each resumed process's steps run on from its checkpoint's (+1, none repeated or skipped) and the last one
    ends at `total`; some resume started past step 0."""
    for ckpt, seg in segments:
        if seg:  # a process killed before it finished a step logs nothing
            assert seg == list(range(ckpt + 1, ckpt + 1 + len(seg))), (ckpt, seg)
    assert segments[-1][1] and segments[-1][1][-1] == total, segments[-1]
    assert max(c for c, _ in segments) >= 2


def assert_same_weights(got: Path, want: Path, atol: float = 1e-5) -> None:
    """The model.safetensors of two model folders hold the same tensors, up to `atol`."""
    import torch
    from safetensors.torch import load_file

    a, b = load_file(got / "model.safetensors"), load_file(want / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol), f"{k} differs from the uninterrupted run"
