"""Output channels: logs and progress on stderr (rich), results on stdout."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

_err = None
_out = None
_held: list[str] | None = None
# Rich lays tables out for 80 columns when a stream is not a terminal, squeezing a stage table in a log file or a
# pipe; tables still take only the width they need.
_PIPE_WIDTH = 160


def err():
    """The stderr console for logs and progress bars (created lazily: rich costs ~40 ms to import)."""
    global _err
    if _err is None:
        from rich.console import Console

        _err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else _PIPE_WIDTH)
    return _err


def out():
    global _out
    if _out is None:
        from rich.console import Console

        _out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else _PIPE_WIDTH)
    return _out


def log(msg: str) -> None:
    if os.environ.get("R1CLI_QUIET") == "1":
        return
    if _held is not None:
        _held.append(msg)
        return
    err().print(msg, soft_wrap=True)  # one log line stays one line in a log file (rich hard-wraps at 80 columns)


@contextlib.contextmanager
def held_logs() -> Iterator[None]:
    """Hold r1's log lines while a stage checks its inputs and loads its model: printed when the block ends, dropped
    when it raises a config or input error (whose `error:` line is then all that stderr shows)."""
    global _held
    if _held is not None:  # nested: the outer block decides
        yield
        return
    _held = []
    try:
        yield
    except BaseException as e:
        from r1cli.errors import ConfigError, InputArtifactError, UsageError

        lines, _held = _held, None
        if not isinstance(e, (ConfigError, InputArtifactError, UsageError)):
            for m in lines or ():
                log(m)
        raise
    release_held()


def release_held() -> None:
    """Print the held lines now and stop holding: a long step inside `held_logs` (building a preset base takes
    minutes) shows its progress."""
    global _held
    lines, _held = _held, None
    for m in lines or ():
        log(m)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def debug_enabled() -> bool:
    return os.environ.get("R1CLI_DEBUG", "") not in ("", "0", "false")
