"""Output channels: logs and progress on stderr (rich), results on stdout."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

_err = None
_out = None


def err():
    """The stderr console for logs and progress bars (created lazily: rich costs ~40 ms to import)."""
    global _err
    if _err is None:
        from rich.console import Console

        _err = Console(stderr=True, highlight=False)
    return _err


def out():
    global _out
    if _out is None:
        from rich.console import Console

        _out = Console(highlight=False, soft_wrap=True)
    return _out


def log(msg: str) -> None:
    if os.environ.get("R1CLI_QUIET") == "1":
        return
    err().print(msg)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def debug_enabled() -> bool:
    return os.environ.get("R1CLI_DEBUG", "") not in ("", "0", "false")
