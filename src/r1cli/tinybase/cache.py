"""Building a tiny base once and reusing it: `ensure_base` (a build per config hash under
`$R1CLI_CACHE/tinybase`, made in a temporary sibling under a file lock and renamed into place after its manifest),
`build` (tokenizer, pretraining, save), `build_info` and `is_complete`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from r1cli.paths import cache_root
from r1cli.runs import sha256_file
from r1cli.tinybase.config import TINYBASE_VERSION, TinyBaseConfig, preset_config
from r1cli.tinybase.pretrain import pretrain
from r1cli.tinybase.tokenizer import EOS, PAD, train_tokenizer

MANIFEST = "r1cli_tinybase.json"


# the built-in tasks whose texts train the tiny tokenizer (part of the base's definition, like TINYBASE_VERSION)
TOKENIZER_TASKS = ("arith", "countdown", "linear")


def build(cfg: TinyBaseConfig, seed: int, out: Path) -> dict[str, Any]:
    """Train tokenizer and model and save them to `out` (a plain HF folder); the manifest is written last."""
    from r1cli.tasks import get_task
    from r1cli.tasks.base import PRETRAIN

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    # tokenizer corpus: the pretraining task in both styles plus the tasks the base was designed with, and the chat
    # markup; a fixed list, so registering a new task does not silently change every base built under the same key
    texts: list[str] = []
    for name in TOKENIZER_TASKS:
        task = get_task(name, **(dict(cfg.task_params) if name == cfg.task else {}))
        k = cfg.tokenizer_rows if name == cfg.task else max(1, cfg.tokenizer_rows // 10)
        for row in task.generate(PRETRAIN, k, seed=seed + 1000, unique=False):
            # the chat markup around each text (special tokens themselves are not BPE-trained)
            texts.append(f"user\n{row['prompt']}\nassistant\n")
            texts.extend(task.solution(row, style=s) for s in task.styles)
    tok = train_tokenizer(texts, cfg.vocab_size)
    tok_s = time.perf_counter() - t0
    model, stats = pretrain(cfg, tok, seed)
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids(EOS)
    model.generation_config.pad_token_id = tok.convert_tokens_to_ids(PAD)
    model.generation_config.bos_token_id = None
    model.save_pretrained(out)
    tok.save_pretrained(out)
    stats.update(
        preset_config=cfg.fields(),
        seed=seed,
        key=cfg.key(seed),
        tinybase_version=TINYBASE_VERSION,
        tokenizer_seconds=round(tok_s, 2),
        build_seconds=round(time.perf_counter() - t0, 2),
    )
    files = {p.name: sha256_file(p) for p in sorted(out.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {**stats, "files": files}
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    os.replace(tmp, out / MANIFEST)
    return manifest


def build_info(folder: str | Path) -> dict[str, Any] | None:
    """The build manifest of a tiny base folder (params, timings, tokens/s, config), or None."""
    p = Path(folder) / MANIFEST
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_complete(folder: Path, key: str) -> bool:
    """A cached build counts only if its manifest exists, has our key and every listed file has its hash."""
    info = build_info(folder)
    if not info or info.get("key") != key or not info.get("files"):
        return False
    try:
        return all(sha256_file(folder / name) == h for name, h in info["files"].items())
    except OSError:
        return False


@contextlib.contextmanager
def _lock(path: Path):
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_base(preset: str = "tiny", seed: int = 0, train_steps: int | None = None, cache: bool = True,
                **overrides: Any) -> Path:
    """The folder of the tiny base `preset` (built now, or reused from the cache when `cache`).

    The folder name holds the preset, seed and config-hash prefix; it is built in a temporary sibling and renamed
    into place after its manifest is written, under a file lock, so concurrent callers build it once and a killed
    build never looks complete. `cache=False` rebuilds and replaces the cached folder.
    """
    from r1cli.console import log, release_held

    cfg = preset_config(preset, train_steps, **overrides)
    key = cfg.key(seed)
    root = cache_root() / "tinybase"
    final = root / f"{preset}-s{seed}-{key[:16]}"
    if cache and is_complete(final, key):
        return final
    with _lock(root / f".{final.name}.lock"):
        if cache and is_complete(final, key):
            return final
        tmp = root / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        release_held()  # minutes of pretraining: its progress shows even inside a stage's held setup
        log(f"building tiny base {preset!r} (seed {seed}, {cfg.train_steps} steps) in {final}")
        try:
            build(cfg, seed, tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
