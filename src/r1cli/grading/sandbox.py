"""A sandbox for model-written Python: run a program against test inputs and report what it did.

What contains it (measurements in `docs/design-notes.md`):
- a separate process tree, started in its own session, killed as a whole on return (process group, then every
  process of the sandbox uid);
- rlimits: CPU seconds per process, address space, file size (output cap), open files, no core dumps, and a
  process count (RLIMIT_NPROC) that holds because the program runs as a fresh unprivileged uid, one per run
  (NPROC is not enforced for root, and a shared uid would let one run starve the others);
- a wall-clock limit per test (the harness kills the test's process group) and for the whole run;
- no network: a fresh network namespace (bubblewrap's, or `unshare(CLONE_NEWNET)`); where the kernel allows
  neither, an audit hook in the interpreter refuses sockets and subprocesses (reduced isolation, logged);
- with bubblewrap (`bwrap`, Debian package `bubblewrap`): a new mount namespace with only /usr, the libraries
  and the interpreter visible (read-only), a private size-limited /tmp and /dev, a PID namespace (a process
  that calls setsid still dies with the sandbox) — the only way found to keep writes out of the world-writable
  /tmp and /dev/shm and the dataset files out of reach. Without bwrap the sandbox still runs (temporary working
  directory owned by the sandbox uid, everything above) and logs a warning once.
- capped output: each test's stdout is a file limited by RLIMIT_FSIZE (a bigger write kills the program with
  SIGXFSZ); the parent reads at most a bounded number of bytes from the harness.

Not done: a seccomp filter (`pyseccomp` is not a dependency; bwrap's namespaces cover what was measured).
The expected outputs never enter the sandbox: `r1cli.rewards.code` compares outside.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import pwd
import random
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
_HARNESS = (Path(__file__).parent / "_sandbox_harness.py").read_text()
_UID_RANGE = (200_000, 1_000_000_000)


@dataclass
class SandboxLimits:
    """Limits of one sandboxed run."""

    timeout_s: float = field(default=2.0, metadata={"help": "Wall-clock limit per test case (seconds)."})
    cpu_s: int = field(default=2, metadata={"help": "CPU seconds per process (RLIMIT_CPU)."})
    memory_mb: int = field(default=1024, metadata={"help": "Address space per process (RLIMIT_AS), MiB."})
    max_processes: int = field(default=32, metadata={"help": "Processes of the sandbox uid (RLIMIT_NPROC)."})
    output_bytes: int = field(default=1 << 20, metadata={"help": "Stdout cap per test case (bytes)."})
    file_mb: int = field(
        default=16, metadata={"help": "Largest file the program may write (RLIMIT_FSIZE), MiB."}
    )
    tmp_mb: int = field(default=64, metadata={"help": "Size of the private /tmp (bwrap only), MiB."})
    open_files: int = field(default=64, metadata={"help": "Open file descriptors (RLIMIT_NOFILE)."})
    isolation: Literal["auto", "bwrap", "basic"] = field(
        default="auto",
        metadata={
            "help": "auto: bubblewrap when it works here, else basic (rlimits + uid + netns); bwrap: require it."
        },
    )

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.cpu_s < 1:
            raise ValueError("timeout_s must be > 0 and cpu_s >= 1")
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb must be >= 64 (the interpreter needs it), got {self.memory_mb}")
        if self.max_processes < 4:
            raise ValueError(
                f"max_processes must be >= 4 (the harness and bwrap need a few), got {self.max_processes}"
            )
        if self.output_bytes < 1 or self.file_mb < 1 or self.tmp_mb < 1 or self.open_files < 16:
            raise ValueError("output_bytes, file_mb and tmp_mb must be >= 1 and open_files >= 16")


@dataclass
class TestRun:
    """What the program did on one test case (no verdict: the caller compares)."""

    status: str  # ok | error | timeout | killed | sandbox-error
    exit: int | None = None
    stdout: str = ""
    value: str | None = None  # repr of the expression of a "call" test
    stderr: str = ""
    truncated: bool = False


# --- environment probing ----------------------------------------------------------------------------------------
def _world_accessible(path: str) -> bool:
    p = Path(path)
    try:
        if os.stat(p).st_mode & 5 != 5:
            return False
        return all(os.stat(d).st_mode & 0o001 for d in p.parents)
    except OSError:
        return False


@dataclass(frozen=True)
class _Env:
    root: bool
    python: str  # interpreter run inside the sandbox
    python_prefix: str  # bound read-only under bwrap
    bwrap: str | None  # usable bwrap binary, or None
    netns: int  # unshare flags that work for the basic mode (0: none; audit hook instead)
    notes: tuple[str, ...] = ()


def _pick_python(root: bool) -> tuple[str, str]:
    own = os.path.realpath(sys.executable)
    own_prefix = os.path.realpath(sys.base_prefix)
    if not root or _world_accessible(own):
        return own, own_prefix
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(cand) and _world_accessible(os.path.realpath(cand)):
            real = os.path.realpath(cand)
            return real, str(Path(real).parent.parent)
    return own, own_prefix  # only usable under bwrap, which binds the prefix


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> None:
    if flags and _libc().unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare({flags:#x}) failed: {os.strerror(err)}")


def _fresh_uid() -> int:
    rng = random.SystemRandom()
    while True:
        uid = rng.randrange(*_UID_RANGE)
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid


def _bwrap_args(env_: _Env, limits: SandboxLimits) -> list[str]:
    args = [
        env_.bwrap or "bwrap",
        "--die-with-parent",
        "--new-session",
        "--unshare-all",
        "--hostname",
        "sandbox",
    ]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for f in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime"):
        if os.path.exists(f):
            args += ["--ro-bind", f, f]
    prefix = env_.python_prefix
    if not prefix.startswith("/usr/") and prefix != "/usr":
        args += ["--ro-bind", prefix, prefix]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(limits.tmp_mb << 20), "--tmpfs", "/tmp", "--chdir", "/tmp"]
    args += ["--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp"]
    return args


def _preexec(uid: int | None, limits: SandboxLimits, unshare_flags: int, nproc: int):
    def fn() -> None:  # runs in the child between fork and exec: syscalls only
        if unshare_flags:
            _unshare(unshare_flags)
        mem = limits.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        fsize = limits.file_mb << 20
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)

    return fn


def _run_quiet(cmd: list[str], preexec: Any, timeout: float = 20.0, cwd: str | None = None) -> bool:
    try:
        r = subprocess.run(
            cmd,
            preexec_fn=preexec,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            start_new_session=True,
            cwd=cwd,
            env=_child_env(),
        )
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _child_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8"}


@functools.lru_cache(maxsize=1)
def probe() -> _Env:
    """What isolation works here (probed once per process, ~0.1 s)."""
    root = os.geteuid() == 0
    python, prefix = _pick_python(root)
    notes: list[str] = []
    limits = SandboxLimits()
    nproc = _nproc_for(None if root else os.getuid(), limits)
    bwrap = shutil.which("bwrap")
    if bwrap:
        env_ = _Env(root, python, prefix, bwrap, 0)
        uid = _fresh_uid() if root else None
        ok = _run_quiet(
            [*_bwrap_args(env_, limits), python, "-I", "-S", "-c", "pass"], _preexec(uid, limits, 0, nproc)
        )
        if not ok:
            notes.append(f"{bwrap} is installed but does not work here (user namespaces disabled?)")
            bwrap = None
    else:
        notes.append("bubblewrap (bwrap) is not installed")
    netns = 0
    for flags in ((CLONE_NEWNET,) if root else ()) + (CLONE_NEWUSER | CLONE_NEWNET,):
        uid = _fresh_uid() if root else None
        usable = _world_accessible(python) or not root
        if usable and _run_quiet(
            [python, "-I", "-S", "-c", "pass"], _preexec(uid, limits, flags, nproc), cwd="/"
        ):
            netns = flags
            break
    if not netns:
        notes.append("no network namespace available: sockets are refused by an audit hook instead")
    if not root:
        notes.append("not root: the program runs as this user (no uid of its own)")
    return _Env(root, python, prefix, bwrap, netns, tuple(notes))


_WARNED: set[str] = set()


def _warn_once(msg: str) -> None:
    if msg in _WARNED:
        return
    _WARNED.add(msg)
    from r1cli.console import log

    log(f"[yellow]warning:[/yellow] sandbox: {msg}")


def _nproc_for(uid: int | None, limits: SandboxLimits) -> int:
    """RLIMIT_NPROC counts every process of the uid: a fresh uid owns none; a shared one owns some already."""
    if uid is None:
        return limits.max_processes
    return limits.max_processes + len(_uid_pids(uid))


def _uid_pids(uid: int) -> list[int]:
    """Live processes whose real uid is `uid` (from /proc; zombies are dead already and left out: the host's
    init reaps the ones a killed PID namespace leaves behind)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", "rb") as f:
                zombie = False
                for line in f:
                    if line.startswith(b"State:"):
                        zombie = b"Z" in line.split()[1]
                    elif line.startswith(b"Uid:"):
                        if int(line.split()[1]) == uid and not zombie:
                            pids.append(int(entry))
                        break
        except (OSError, IndexError, ValueError):
            continue
    return pids


def _reap_uid(uid: int) -> None:
    """Kill every process of the sandbox uid (catches children that escaped the process group with setsid)."""
    for _ in range(3):
        if not _uid_pids(uid):
            return

        def drop() -> None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)

        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["/bin/kill", "-KILL", "-1"],
                preexec_fn=drop,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=5,
            )
        time.sleep(0.01)


# --- running ------------------------------------------------------------------------------------------------------
def run_tests(code: str, tests: list[dict[str, str]], limits: SandboxLimits | None = None) -> list[TestRun]:
    """Run `code` once per test. A test is `{"kind": "stdio", "input": str}`, `{"kind": "call", "expr": str}`
    (the repr of the expression's value is reported) or `{"kind": "assert", "stmt": str}`."""
    limits = limits or SandboxLimits()
    if not tests:
        return []
    env_ = probe()
    use_bwrap = env_.bwrap is not None and limits.isolation != "basic"
    if limits.isolation == "bwrap" and env_.bwrap is None:
        raise RuntimeError(
            "sandbox isolation 'bwrap' requested but bwrap does not work here: " + "; ".join(env_.notes)
        )
    if not use_bwrap:
        for note in env_.notes:
            _warn_once(note + " - reduced isolation: writes to /tmp and /dev/shm are not contained")
    uid = _fresh_uid() if env_.root else None
    nproc = _nproc_for(uid, limits) if uid is not None else _nproc_for(os.getuid(), limits)
    workdir = None
    if use_bwrap:
        cmd = [*_bwrap_args(env_, limits), env_.python, "-I", "-S", "-B", "-c", _HARNESS]
        flags = 0
        cwd = "/"
    else:
        workdir = tempfile.mkdtemp(prefix="r1cli-sbx-")
        if uid is not None:
            os.chown(workdir, uid, uid)
        os.chmod(workdir, 0o700)
        cmd = [env_.python, "-I", "-S", "-B", "-c", _HARNESS]
        flags = env_.netns
        cwd = workdir
    job = {
        "code": code,
        "tests": tests,
        "timeout": limits.timeout_s,
        "output_cap": limits.output_bytes,
        "block_net": not use_bwrap and not env_.netns,
    }
    total_wall = 2.0 + len(tests) * (limits.timeout_s + 0.25)
    read_cap = len(tests) * (limits.output_bytes * 2 + 8192) + 65536
    try:
        raw, err = _communicate(
            cmd, json.dumps(job).encode(), _preexec(uid, limits, flags, nproc), cwd, total_wall, read_cap
        )
    finally:
        if uid is not None:
            _reap_uid(uid)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    try:
        results = json.loads(raw.decode("utf-8", "replace")) if raw else None
    except ValueError:
        results = None
    if not isinstance(results, list) or len(results) != len(tests):
        why = (err.decode("utf-8", "replace")[-500:] or "no result").strip()
        return [TestRun("sandbox-error", stderr=why) for _ in tests]
    out = []
    for r in results:
        if not isinstance(r, dict):
            out.append(TestRun("sandbox-error"))
            continue
        out.append(
            TestRun(
                status=str(r.get("status")),
                exit=r.get("exit"),
                stdout=str(r.get("stdout") or ""),
                value=r.get("value"),
                stderr=str(r.get("stderr") or ""),
                truncated=bool(r.get("truncated")),
            )
        )
    return out


def _communicate(
    cmd: list[str], payload: bytes, preexec: Any, cwd: str, wall_s: float, read_cap: int
) -> tuple[bytes, bytes]:
    """Start the sandbox, feed it the job, read at most `read_cap` bytes, kill everything by `wall_s`."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=preexec,
        start_new_session=True,
        cwd=cwd,
        env=_child_env(),
        close_fds=True,
    )
    deadline = time.monotonic() + wall_s

    def feed() -> None:
        with contextlib.suppress(OSError):
            proc.stdin.write(payload)  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out, err = bytearray(), bytearray()
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, out)  # type: ignore[arg-type]
    sel.register(proc.stderr, selectors.EVENT_READ, err)  # type: ignore[arg-type]
    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(timeout=min(left, 0.5)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buf = key.data
                room = (read_cap if buf is out else 65536) - len(buf)
                if room > 0:
                    buf += chunk[:room]
                elif buf is out:  # flooding the result pipe: stop here
                    raise TimeoutError
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.05, deadline - time.monotonic()))
    except TimeoutError:
        pass
    finally:
        sel.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                f.close()  # type: ignore[union-attr]
        writer.join(timeout=1.0)
    return bytes(out), bytes(err)


def run_python(code: str, stdin: str = "", limits: SandboxLimits | None = None) -> TestRun:
    """Run one program with one stdin (a convenience over `run_tests`)."""
    return run_tests(code, [{"kind": "stdio", "input": stdin}], limits)[0]


def isolation_report() -> dict[str, Any]:
    """What the sandbox can use on this machine (for logs and `r1 ... --debug`)."""
    e = probe()
    return {
        "root": e.root,
        "python": e.python,
        "bwrap": e.bwrap,
        "netns": {0: None, CLONE_NEWNET: "netns", CLONE_NEWUSER | CLONE_NEWNET: "userns+netns"}[e.netns],
        "notes": list(e.notes),
    }
