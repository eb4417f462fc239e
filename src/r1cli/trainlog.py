"""Per-step training metrics: `metrics.jsonl` in the run folder (one JSON object per logged step, appended and
flushed, so a killed run keeps what it logged), PNG curves of reward and completion length at the end, and the
whole run's mean loss after a `--resume`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def metrics_callback(path: str | Path):
    """A TrainerCallback appending each `on_log` dict (with step and epoch) to `path` (rank 0 only)."""
    from transformers import TrainerCallback

    class MetricsJsonl(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return control
            rec = {"step": state.global_step, **{k: _plain(v) for k, v in logs.items()}}
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
            return control

    return MetricsJsonl()


def _plain(v: Any) -> Any:
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by kill -9
            continue
    return out


def training_curves(path: str | Path, png: str | Path, keys: list[str] | None = None, title: str = "") -> Path | None:
    """Plot the given metric keys (default: reward, accuracy, completion length) against the step; each key from
    the rows that hold it (training steps, or the held-out evals logged between them)."""
    keys = keys or ["reward", "rewards/accuracy/mean", "completions/mean_length"]
    rows = [r for r in read_metrics(path) if any(k in r for k in keys)]
    if not rows:
        return None
    keys = [k for k in keys if any(k in r for r in rows)]
    if not keys:
        return None
    from r1cli.plots import new_figure

    fig = new_figure(figsize=(4.2 * len(keys), 3.2))
    axes = fig.subplots(1, len(keys), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, lw=1, alpha=0.5)
            w = max(1, len(ys) // 20)
            if w > 1:
                sm = [sum(ys[max(0, i - w + 1) : i + 1]) / len(ys[max(0, i - w + 1) : i + 1]) for i in range(len(ys))]
                ax.plot(xs, sm, lw=2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    return Path(png)


def run_train_loss(trainer: Any, out: Any, resumed_from: str | None) -> float:
    """The whole run's mean training loss. HF's `TrainOutput.training_loss` averages the steps this `train()` call
    ran, so after `--resume` it would be the last session's alone; the steps up to the checkpoint come back from
    the log history it restored (each logged loss the mean of the steps since the previous log). Exact when the
    checkpoint's step was a logging step; otherwise its last unlogged steps are left out."""
    if not resumed_from:
        return float(out.training_loss)
    start = int(Path(resumed_from).name.rsplit("-", 1)[1])  # checkpoint-N (by now save_total_limit may have deleted it)
    total = covered = prev = 0
    for h in trainer.state.log_history:
        if "loss" in h and prev < h["step"] <= start:
            total += h["loss"] * (h["step"] - prev)
            covered += h["step"] - prev
            prev = h["step"]
    ran = trainer.state.global_step - start
    return (total + float(out.training_loss) * ran) / max(covered + ran, 1)
