"""Where r1cli keeps what it builds once and reuses: `$R1CLI_CACHE`, else `~/.cache/r1cli`.

Its users keep their own folder under it: `tinybase/` (the embedded tiny bases), `smollm2-135m-<key>/` (the
converted SmolLM2), `decontam/` (n-gram indexes of the eval sets).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$R1CLI_CACHE`, else `~/.cache/r1cli`."""
    return Path(os.environ.get("R1CLI_CACHE") or Path.home() / ".cache" / "r1cli").expanduser()
