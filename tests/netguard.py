"""Run `r1` with Python's network fenced off, recording every attempt: `python tests/netguard.py ARGS...` is
`r1 ARGS` where each name lookup or TCP/UDP connect fails as on a machine without a network (ENETUNREACH) and is
logged, one line each, to the file named by $R1CLI_NETLOG. At exit the file named by $R1CLI_MODLOG (if set)
receives the names of the heavy libraries the command imported (torch, transformers, trl, peft, bitsandbytes).

`install(log)` applies the same fence inside an already running interpreter (the reliability suite's driver).
"""

from __future__ import annotations

import errno
import os
import socket
import sys

HEAVY = ("torch", "transformers", "trl", "peft", "bitsandbytes", "kernels", "datasets")


def install(log_path: str | None, attempts: list[str] | None = None) -> list[str]:
    """Make lookups and INET connects fail and record them (in `attempts`, and appended to `log_path`)."""
    seen = attempts if attempts is not None else []

    def record(what: str) -> None:
        seen.append(what)
        if log_path:
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(what + "\n")

    def unreachable(what: str) -> OSError:
        record(what)
        return OSError(errno.ENETUNREACH, f"network is unreachable (tests/netguard.py: {what})")

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise unreachable(f"connect {address!r}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            record(f"connect_ex {address!r}")
            return errno.ENETUNREACH
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        raise unreachable(f"getaddrinfo {host!r}")

    def gethostbyname(host):
        raise unreachable(f"gethostbyname {host!r}")

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.gethostbyname = gethostbyname  # type: ignore[assignment]
    return seen


def imported_heavy() -> list[str]:
    return [m for m in HEAVY if sys.modules.get(m) is not None]


def _write_modules() -> None:
    path = os.environ.get("R1CLI_MODLOG")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(imported_heavy()) + "\n")


if __name__ == "__main__":
    import atexit

    install(os.environ.get("R1CLI_NETLOG"))
    atexit.register(_write_modules)
    from r1cli.cli import main

    main(sys.argv[1:])
