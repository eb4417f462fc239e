"""The code sandbox: each escape is really attempted, and contained; and the `code` reward on top of it."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import pytest

from r1cli.grading.sandbox import _UID_RANGE, SandboxLimits, probe, run_python, run_tests
from r1cli.rewards import get_reward
from r1cli.rewards.code import extract_code, parse_tests, passed

HAS_BWRAP = probe().bwrap is not None
MODES = [
    pytest.param("bwrap", marks=pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap not usable here")),
    "basic",
]
FAST = dict(timeout_s=1.0, cpu_s=1)


def limits(mode: str, **kw) -> SandboxLimits:
    return SandboxLimits(isolation=mode, **{**FAST, **kw})


def sandbox_pids() -> list[int]:
    """Live host processes owned by a sandbox uid (there must be none after a run; zombies are dead already)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
                uid = int(fields["Uid"].split()[0])
                zombie = fields["State"].split()[0] == "Z"
            except (OSError, KeyError, ValueError, IndexError):
                continue
            if _UID_RANGE[0] <= uid < _UID_RANGE[1] and not zombie:
                out.append(int(entry))
    return out


@pytest.mark.parametrize("mode", MODES)
def test_runs_a_program(mode):
    r = run_python("print(int(input()) * 2)", "21\n", limits(mode))
    assert (r.status, r.stdout) == ("ok", "42\n")


@pytest.mark.parametrize("mode", MODES)
def test_socket_connect_is_blocked(mode):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(1.5)
    port = srv.getsockname()[1]
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(_accept(srv)))
    t.start()
    code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'escaped')\nprint('connected')"
    r = run_python(code, "", limits(mode))
    t.join()
    srv.close()
    assert r.status != "ok" and "connected" not in r.stdout
    assert got == [None]  # the host listener never saw a connection


def _accept(srv):
    try:
        conn, _ = srv.accept()
        conn.close()
        return "accepted"
    except OSError:
        return None


@pytest.mark.parametrize("mode", MODES)
def test_writes_outside_the_sandbox_are_contained(mode, tmp_path):
    nonce = uuid.uuid4().hex
    shared = tmp_path / "world-writable"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    protected = tmp_path / "root-owned"
    protected.mkdir(mode=0o755)
    targets = [
        f"/tmp/r1cli-{nonce}",
        f"/dev/shm/r1cli-{nonce}",
        f"/etc/r1cli-{nonce}",
        str(protected / nonce),
    ]
    if mode == "bwrap":
        targets.append(str(shared / nonce))  # only bwrap hides world-writable host directories
    code = (
        f"import os\nfor p in {targets!r}:\n    try:\n        open(p, 'w').write('x')\n        print('wrote', p)\n"
        "    except OSError as e:\n        print('denied', p, e.errno)\n"
    )
    r = run_python(code, "", limits(mode))
    assert r.status == "ok"
    for p in targets:
        if mode == "basic" and p.startswith(("/tmp/", "/dev/shm/")):
            if os.path.exists(p):  # documented: without bwrap /tmp and /dev/shm are not contained
                os.remove(p)
            continue
        assert not os.path.exists(p), p


@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap not usable here")
def test_host_files_are_invisible_under_bwrap(tmp_path):
    secret = tmp_path / "expected_outputs.json"
    secret.write_text("42")
    secret.chmod(0o644)
    tmp_path.chmod(0o755)
    code = (
        f"import os\nprint(os.path.exists({str(secret)!r}), os.path.exists('/work'), os.path.exists('/root'))"
    )
    r = run_python(code, "", limits("bwrap"))
    assert r.stdout.split()[:2] == ["False", "False"]


@pytest.mark.parametrize("mode", MODES)
def test_fork_bomb_is_contained(mode):
    code = "import os\nn = 0\nwhile True:\n    try:\n        os.fork()\n        n += 1\n    except OSError:\n        pass\n"
    t0 = time.perf_counter()
    r = run_python(code, "", limits(mode))
    elapsed = time.perf_counter() - t0
    assert r.status in ("timeout", "killed", "error")
    assert elapsed < 10
    assert sandbox_pids() == []  # every forked process is gone (the bomb ran under uids of its own)


@pytest.mark.parametrize("mode", MODES)
def test_setsid_escapee_is_killed(mode):
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('parent done')"
    r = run_python(code, "", limits(mode))
    assert r.stdout == "parent done\n"
    assert sandbox_pids() == []


@pytest.mark.parametrize("mode", MODES)
def test_memory_bomb_is_contained(mode):
    t0 = time.perf_counter()
    r = run_python("x = bytearray(8 << 30)\nprint('allocated')", "", limits(mode, memory_mb=512))
    assert r.status != "ok" and "allocated" not in r.stdout
    assert "MemoryError" in r.stderr
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("mode", MODES)
def test_infinite_loop_is_stopped(mode):
    t0 = time.perf_counter()
    r = run_python("while True:\n    pass", "", limits(mode))
    # the wall-clock limit or the CPU rlimit (SIGXCPU) stops it, whichever fires first on a loaded machine
    assert r.status in ("timeout", "killed")
    assert time.perf_counter() - t0 < 4


@pytest.mark.parametrize("mode", MODES)
def test_huge_stdout_is_capped(mode):
    t0 = time.perf_counter()
    r = run_python(
        "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", "", limits(mode, output_bytes=1 << 16)
    )
    assert r.status != "ok" and r.truncated and len(r.stdout) <= 1 << 16
    assert time.perf_counter() - t0 < 4


def test_tests_run_in_separate_processes_with_their_own_stdin():
    tests = [
        {"kind": "stdio", "input": "1\n"},
        {"kind": "stdio", "input": "2\n"},
        {"kind": "call", "expr": "f(3)"},
    ]
    runs = run_tests(
        "def f(x):\n    return x * 10\nif __name__ == '__main__':\n    print(f(int(input())))", tests
    )
    assert [r.stdout for r in runs[:2]] == ["10\n", "20\n"]
    assert runs[2].value == "30"


# --- the code reward ------------------------------------------------------------------------------------------
STDIO = [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5\n", "output": "10"}]


def test_code_reward_scores_fraction_passed():
    fn = get_reward("code", **FAST)
    good = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    half = "```python\na, b = map(int, input().split())\nprint(3)\n```"
    out = fn([good, half, "no code here", "<think>\n```python\nprint(3)\n```"], tests=[STDIO] * 4)
    assert out == [1.0, 0.5, 0.0, 0.0]
    assert fn([good], tests=[[]]) == [None]


def test_code_reward_is_not_fooled_by_in_process_tricks():
    fn = get_reward("code", **FAST)
    tests = [["assert add(1, 2) == 3", "assert add(2, 2) == 4"]]
    always_equal = "```python\nclass E:\n    def __eq__(self, o):\n        return True\ndef add(a, b):\n    return E()\n```"
    early_exit = "```python\nimport os\nos._exit(0)\n```"
    patch_print = (
        "```python\nimport builtins\nbuiltins.print = lambda *a, **k: None\ndef add(a, b):\n    return 0\n```"
    )
    honest = "```python\ndef add(a, b):\n    return a + b\n```"
    assert fn([always_equal, early_exit, patch_print, honest], tests=tests * 4) == [0.0, 0.0, 0.0, 1.0]


def test_parse_tests_formats():
    assert [c.mode for c in parse_tests(STDIO)] == ["stdout", "stdout"]
    assert parse_tests({"test_cases": STDIO})[0].expected == "3\n"
    apps = parse_tests('{"inputs": [[1, 2]], "outputs": [[3]], "fn_name": "add"}')
    assert apps[0].run == {"kind": "call", "expr": "add(*[1, 2])"} and apps[0].expected == [3]
    a = parse_tests(["assert add(1, 2) == 3", "assert is_ok(1)"])
    assert (a[0].mode, a[0].run["expr"], a[0].expected) == ("value", "add(1, 2)", 3)
    assert a[1].mode == "exit"
    assert len(parse_tests("assert f(1) == 1\nassert f(2) == 2\n")) == 2
    with pytest.raises(ValueError):
        parse_tests({"weird": 1})


def test_extract_code_rules():
    assert (
        extract_code("<think>\nplan\n</think>\n```python\nprint(1)\n```\n```py\nprint(2)\n```")
        == "print(2)\n"
    )
    assert extract_code("<think>\n```python\nprint(1)\n```\n</think>\nno code") is None
    assert extract_code("<think>\nx\n</think>\n<answer>\nprint(5)\n</answer>") == "print(5)"
    assert extract_code("```js\nconsole.log(1)\n```") is None



def test_extract_code_on_fence_floods_is_bounded():
    """300 kB of fences: no program (no fence pair opens a python block), found in linear time (the fence scan is
    capped at _MAX_FENCES; a quadratic pairing would take minutes here, the linear scan takes about a millisecond)."""
    floods = {
        "```" * 100_001: None,  # fences without an info line: no block
        "<answer>" + "```" * 100_001: None,
        "```js\n" * 100_001: None,  # blocks of another language
        "```\nprint(1)\n" * 100_001: "print(1)\n",  # bare fences pair up: the last complete block is the program
    }
    for text, expected in floods.items():
        t0 = time.perf_counter()
        got = extract_code(text)
        elapsed = time.perf_counter() - t0
        assert got == expected, (text[:20], got and got[:40])
        assert elapsed < 0.5, f"{elapsed:.2f} s on a {len(text)}-character flood of {text[:12]!r}"


def test_passed_compares_outside():
    from r1cli.grading.sandbox import TestRun
    from r1cli.rewards.code import Case

    assert passed(Case({}, "1 2\n3", "stdout"), TestRun("ok", 0, "1  2\n3\n"))
    assert not passed(Case({}, "1 2\n3", "stdout"), TestRun("ok", 0, "1  2\n3\n"), compare="exact")
    assert not passed(Case({}, "3", "stdout"), TestRun("timeout", None, "3"))
    assert passed(Case({}, (1, 2), "value"), TestRun("ok", 0, value="[1, 2]"))


def test_without_bwrap_it_still_runs_and_warns(monkeypatch, capsys):
    import r1cli.grading.sandbox as sb

    monkeypatch.setattr(sb.shutil, "which", lambda name: None)
    monkeypatch.setattr(sb, "_WARNED", set())
    monkeypatch.delenv("R1CLI_QUIET", raising=False)
    sb.probe.cache_clear()
    try:
        assert sb.probe().bwrap is None
        r = sb.run_python("print('still works')", "", SandboxLimits(**FAST))
        assert r.stdout == "still works\n"
        assert "bubblewrap" in capsys.readouterr().err
        with pytest.raises(RuntimeError, match="bwrap"):
            sb.run_python("print(1)", "", SandboxLimits(isolation="bwrap"))
    finally:
        sb.probe.cache_clear()
