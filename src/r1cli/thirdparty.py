"""Third-party libraries a run does not need, kept out of it; and the library noise r1cli filters.

bitsandbytes: peft imports it whenever it is installed (`peft/__init__` -> `peft.helpers`), and transformers
imports peft from `TrainingArguments` (`training_args` -> `trainer_utils`), so every TRL config import, trainer and
model load used to import it. On a CPU with AVX512-BF16 that import calls `kernels.get_kernel(
"kernels-community/quantization-bitsandbytes")`: it reaches the Hugging Face Hub (or logs "offline mode") and
logs a warning, on every command. A run needs bitsandbytes only for a 4-bit model or a bitsandbytes optimizer, so
`run_stage` resolves the config with it blocked (`defer_bitsandbytes`: `sys.modules["bitsandbytes"] = None`, the
import system's own marker for a blocked module: `import` raises ImportError and `importlib.util.find_spec`
returns None, so every library takes it as not installed) and `allow_bitsandbytes` lifts the block when the
config or the 4-bit loader needs it.

datasets: `load_dataset` sends a HEAD request to an S3 download counter on every call, for a local JSONL file
too; `no_download_counter` turns that off (its own switch, HF_UPDATE_DOWNLOAD_COUNTS, unless the user set it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

BNB = "bitsandbytes"
# transformers' bitsandbytes optimizers (OptimizerNames): adamw_bnb_8bit, paged_adamw_32bit, lion_8bit, ademamix...
_BNB_OPTIM = re.compile(r"bnb|8bit|32bit|paged|lion|ademamix")


def defer_bitsandbytes() -> bool:
    """Block bitsandbytes unless it is imported already; True if this call blocked it (then `undefer` later)."""
    if BNB in sys.modules:
        return False
    sys.modules[BNB] = None  # type: ignore[assignment]
    return True


def undefer_bitsandbytes() -> None:
    """Lift the block without importing bitsandbytes, and forget availability checks cached while it stood (so a
    later command in the same process, e.g. a test session, sees it installed again)."""
    if BNB in sys.modules and sys.modules[BNB] is None:
        del sys.modules[BNB]
    import_utils = sys.modules.get("peft.import_utils")
    for name in ("is_bnb_available", "is_bnb_4bit_available"):
        cache_clear = getattr(getattr(import_utils, name, None), "cache_clear", None)
        if cache_clear is not None:
            cache_clear()


def allow_bitsandbytes() -> Any:
    """Import bitsandbytes for a 4-bit model or a bitsandbytes optimizer (lifting a block); returns the module.
    Raises ImportError when it is not installed."""
    undefer_bitsandbytes()
    quiet_bitsandbytes_kernel()
    import bitsandbytes

    helpers = sys.modules.get("peft.helpers")
    if helpers is not None and getattr(helpers, "bnb", None) is None:
        helpers.bnb = bitsandbytes  # imported while bitsandbytes was blocked: give it the module it would have had
    return bitsandbytes


def needs_bitsandbytes(cfg: Any) -> bool:
    """Does this resolved config load a 4-bit model or use a bitsandbytes optimizer?"""
    if getattr(cfg, "load_in_4bit", False):
        return True
    optim = getattr(cfg, "optim", None)
    optim = getattr(optim, "value", optim)
    return isinstance(optim, str) and bool(_BNB_OPTIM.search(optim))


class _DropMessages(logging.Filter):
    def __init__(self, *prefixes: str):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


_quieted: set[str] = set()


def _drop(logger: str, *prefixes: str) -> None:
    if logger not in _quieted:
        _quieted.add(logger)
        logging.getLogger(logger).addFilter(_DropMessages(*prefixes))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _DropNewScoreHeadReport(logging.Filter):
    """transformers' LOAD REPORT when a causal LM is loaded as `*ForSequenceClassification` and the only news is
    its new `score` head (MISSING): what `r1 reward-model` always does, and says in its own log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = _ANSI.sub("", str(record.msg))
        if "ForSequenceClassification LOAD REPORT" not in msg:
            return True
        rows = [ln.split("|") for ln in msg.splitlines() if ln.count("|") >= 2 and not ln.startswith(("Key", "-"))]
        only_new_head = bool(rows) and all(
            r[0].strip().startswith("score.") and r[1].strip() == "MISSING" for r in rows
        )
        return not only_new_head


def quiet_bitsandbytes_kernel() -> None:
    """When bitsandbytes is really needed, its CPU backend still asks the hub for an optional faster 4-bit kernel
    and warns when it cannot have it (it then uses its own kernel): nothing a user can act on, so these two
    records are dropped (only these: other bitsandbytes and kernels warnings still show)."""
    _drop("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community")
    _drop("kernels._internals.hf_hub", "Skipping publisher trust check for 'kernels-community/")


def quiet_library_warnings() -> None:
    """Warnings libraries raise at each other that a user can do nothing about, each matched by its message.

    - transformers >= 5.2x deprecates `PreTrainedModel.is_gradient_checkpointing`, which TRL's
      `unwrap_model_for_generation` and peft's `PeftModel.__init__` still read (a FutureWarning per run).
    - transformers' LOAD REPORT of a reward model's new score head (see `_DropNewScoreHeadReport`); any other
      load report (mismatched or unexpected weights) still shows.
    """
    import warnings

    # filterwarnings replaces an identical filter instead of stacking it: calling this per command is fine
    warnings.filterwarnings(
        "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )
    if "transformers.modeling_utils" not in _quieted:
        _quieted.add("transformers.modeling_utils")
        logging.getLogger("transformers.modeling_utils").addFilter(_DropNewScoreHeadReport())


def no_download_counter() -> None:
    """No S3 download-counter request from `datasets.load_dataset` (a local file needs no network); a user's own
    HF_UPDATE_DOWNLOAD_COUNTS wins."""
    if "HF_UPDATE_DOWNLOAD_COUNTS" in os.environ:
        return
    os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"  # datasets reads it when imported (child processes too)
    config = sys.modules.get("datasets.config")
    if config is not None:  # already imported (a test session running several commands)
        config.HF_UPDATE_DOWNLOAD_COUNTS = False


@contextlib.contextmanager
def no_weight_bars() -> Iterator[None]:
    """transformers' own bars ("Loading weights", "Writing model shards": one per load and per checkpoint) kept off
    stderr while a stage runs; r1's lines say what was loaded and saved. Only transformers' bars: the trainer's
    step bar and huggingface_hub's download bars are other tqdm objects and stay. Older transformers without
    `set_tqdm_hook`: unchanged."""
    import importlib

    tlog = importlib.import_module("transformers.utils.logging")
    hook = getattr(tlog, "set_tqdm_hook", None)
    if hook is None:
        yield
        return
    hook(lambda _factory, args, kwargs: tlog.EmptyTqdm(*args, **kwargs))
    try:
        yield
    finally:
        hook(None)


@contextlib.contextmanager
def quiet_hf_library(lib: str) -> Iterator[None]:
    """transformers' or datasets' progress bars and log records kept off stderr for a block (a load that fails
    becomes one r1 error line; one that succeeds is reported by r1's own line). Both share one logging API."""
    import importlib

    tlog = importlib.import_module(f"{lib}.utils.logging")
    level, bars = tlog.get_verbosity(), tlog.is_progress_bar_enabled()
    tlog.set_verbosity(tlog.CRITICAL)
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if bars:
            tlog.enable_progress_bar()
