"""PNG charts of eval results (matplotlib with the Agg backend, imported only when a chart is drawn)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

BAR_METRICS = ("pass@1", "cons@k", "format_rate")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _err(bench: dict[str, Any], metric: str, value: float) -> tuple[float, float]:
    ci = (bench.get("ci") or {}).get(metric) or {}
    lo, hi = (ci.get("ci95") or [value, value])[:2]
    if lo is None or hi is None or lo != lo or hi != hi:  # NaN
        return 0.0, 0.0
    return max(0.0, value - lo), max(0.0, hi - value)


def results_chart(results: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Grouped bars: one group per benchmark, bars pass@1 / cons@k / format rate with 95% intervals."""
    return compare_chart([(title or str(results.get("model", "")), results)], path, title=title)


def compare_chart(runs: Sequence[tuple[str, dict[str, Any]]], path: str | Path, title: str | None = None,
                  metrics: Sequence[str] = BAR_METRICS) -> Path:
    """Bars per (benchmark, metric), one color per run, with 95% bootstrap intervals. runs: [(label, results)]."""
    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    benches: list[str] = []
    for _, res in runs:
        for b in res.get("benchmarks", {}):
            if b not in benches:
                benches.append(b)
    groups = [(b, m) for b in benches for m in metrics
              if any(m in r.get("benchmarks", {}).get(b, {}) for _, r in runs)]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(groups) * max(1, len(runs)) ** 0.5 + 2), 3.6), dpi=110)
    width = 0.8 / max(1, len(runs))
    for j, (label, res) in enumerate(runs):
        xs, ys, errs = [], [], [[], []]
        for i, (b, m) in enumerate(groups):
            bench = res.get("benchmarks", {}).get(b, {})
            if m not in bench or bench[m] is None:
                continue
            v = float(bench[m])
            lo, hi = _err(bench, m, v)
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(v)
            errs[0].append(lo)
            errs[1].append(hi)
        ax.bar(xs, ys, width=width * 0.95, yerr=errs, capsize=2, label=label)
        for x, y in zip(xs, ys, strict=True):
            ax.text(x, y + 0.01, f"{y:.2f}", ha="center", va="bottom", fontsize=6)
    k_of = {b: next((r["benchmarks"][b].get("k") for _, r in runs if b in r.get("benchmarks", {})), None)
            for b in benches}
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{b}\n{m.replace('@k', f'@{k_of[b]}') if k_of[b] else m}" for b, m in groups],
                       fontsize=7)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("rate")
    if title:
        ax.set_title(title, fontsize=9)
    if len(runs) > 1 or runs and runs[0][0]:
        ax.legend(fontsize=7, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
