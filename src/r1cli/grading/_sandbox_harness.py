"""In-sandbox harness: runs a candidate program once per test case, each in a forked child. Stdlib only.

Executed by `r1cli.grading.sandbox` as `python -I -S -B -c <this file's source>` inside the sandbox, as the
unprivileged sandbox uid, under its rlimits. Reads one JSON job on stdin:

    {"code": str, "tests": [{"kind": "stdio", "input": str} | {"kind": "call", "expr": str}
                            | {"kind": "assert", "stmt": str}],
     "timeout": seconds per test, "output_cap": bytes, "block_net": bool}

and writes one JSON list on stdout, one entry per test: {"status": "ok" | "error" | "timeout" | "killed",
"exit": int | null, "stdout": str, "value": str | null, "stderr": str, "truncated": bool}.

The expected outputs are never sent here: the harness only reports what the program did and the parent
compares, so a program that takes over this process still cannot make a wrong answer pass. Each child gets its
own stdin file, a stdout file capped by RLIMIT_FSIZE (a bigger write kills it with SIGXFSZ), its own process
group (killed on timeout), and none of the harness's descriptors.
"""

import contextlib
import json
import os
import resource
import signal
import sys
import time


def _block_net_hook(event, args):
    # last-resort network/escape blocking when no network namespace could be made
    if event in ("socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"):
        raise PermissionError("network access is disabled in the sandbox")
    if event in (
        "subprocess.Popen",
        "os.exec",
        "os.posix_spawn",
        "os.system",
        "ctypes.dlopen",
        "ctypes.cdata",
    ):
        raise PermissionError(f"{event} is disabled in the sandbox")


def _child(test, code, paths, output_cap, block_net, result_fd):
    os.setpgid(0, 0)
    os.close(result_fd)
    fin = os.open(paths["in"], os.O_RDONLY)
    os.dup2(fin, 0)
    fout = os.open(paths["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fout, 1)
    ferr = os.open(paths["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(ferr, 2)
    for fd in (fin, fout, ferr):
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_FSIZE, (output_cap, output_cap))
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    if block_net:
        sys.addaudithook(_block_net_hook)
    kind = test["kind"]
    g = {"__name__": "__main__" if kind == "stdio" else "solution", "__builtins__": __builtins__}
    status = 0
    try:
        exec(compile(code, "solution.py", "exec"), g)
        if kind == "call":
            value = eval(compile(test["expr"], "<test>", "eval"), g)
            text = repr(value)
            fd = os.open(paths["val"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, text.encode("utf-8", "replace"))
            os.close(fd)
        elif kind == "assert":
            exec(compile(test["stmt"], "<test>", "exec"), g)
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if kind != "stdio":
            status = status or 1  # a test that exits before its check ran did not pass
    except BaseException:  # noqa: BLE001 - report any failure of the candidate as an error
        import traceback

        traceback.print_exc()
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        status = status or 1
    os._exit(status)


def _read(path, cap):
    try:
        with open(path, "rb") as f:
            data = f.read(cap + 1)
    except OSError:
        return "", False
    return data[:cap].decode("utf-8", "replace"), len(data) >= cap


def main():
    job = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    result_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    code, timeout, cap = job["code"], float(job["timeout"]), int(job["output_cap"])
    results = []
    for k, test in enumerate(job["tests"]):
        paths = {name: f"t{k}.{name}" for name in ("in", "out", "err", "val")}
        with open(paths["in"], "w", encoding="utf-8") as f:
            f.write(test.get("input", ""))
        t0 = time.monotonic()
        try:
            pid = os.fork()
        except OSError as e:
            results.append({"status": "error", "exit": None, "stdout": "", "value": None, "stderr": str(e)})
            continue
        if pid == 0:
            try:
                _child(test, code, paths, cap, job.get("block_net", False), result_fd)
            finally:
                os._exit(1)
        status, exit_code = "ok", None
        while True:
            got, st = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                if os.WIFEXITED(st):
                    exit_code = os.WEXITSTATUS(st)
                    status = "ok" if exit_code == 0 else "error"
                else:
                    exit_code = -os.WTERMSIG(st)
                    status = "killed"
                break
            if time.monotonic() - t0 > timeout:
                status = "timeout"
                break
            time.sleep(0.002 if time.monotonic() - t0 < 0.05 else 0.01)
        for sig_target in (-pid, pid):  # the test's whole process group, then the child itself
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(sig_target, signal.SIGKILL)
        if status == "timeout":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        out, truncated = _read(paths["out"], cap)
        err, _ = _read(paths["err"], 2000)
        value = None
        if test["kind"] == "call" and status == "ok":
            value, vt = _read(paths["val"], cap)
            truncated = truncated or vt
        results.append(
            {
                "status": status,
                "exit": exit_code,
                "stdout": out,
                "value": value,
                "stderr": err[-2000:],
                "truncated": truncated,
            }
        )
        for p in paths.values():
            with contextlib.suppress(OSError):
                os.unlink(p)
    data = json.dumps(results).encode()
    while data:
        data = data[os.write(result_fd, data) :]


if __name__ == "__main__":
    main()
