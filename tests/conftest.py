"""Session fixtures shared by the whole suite.

`tiny_base_path` builds the seconds-scale `tiny-test` base once per test run (a real tokenizer + Qwen2 model,
pretrained for a few dozen steps) in a session cache, so end-to-end tests share one model. Set
`R1CLI_TEST_CACHE=DIR` to reuse builds across runs while developing (a build is only reused when its manifest
matches the config hash).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def r1cli_cache(tmp_path_factory) -> Path:
    """The cache root used by tests (never the user's ~/.cache)."""
    root = os.environ.get("R1CLI_TEST_CACHE")
    path = Path(root) if root else tmp_path_factory.mktemp("r1cli-cache")
    old = os.environ.get("R1CLI_CACHE")
    os.environ["R1CLI_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("R1CLI_CACHE", None)
    else:
        os.environ["R1CLI_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_base_path(r1cli_cache) -> Path:
    """A HF model folder (config, safetensors, tokenizer) of the `tiny-test` base, built once per session."""
    from r1cli.tinybase import ensure_base

    return ensure_base("tiny-test", seed=0)
