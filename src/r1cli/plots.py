"""PNG charts of eval results (matplotlib with the Agg backend, imported only when a chart is drawn)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

BAR_METRICS = ("pass@1", "cons@k", "format_rate")


def new_figure(**kw: Any) -> Any:
    """A matplotlib Figure not registered with pyplot: drawing one never switches the caller's backend (a notebook
    keeps its inline plots) and needs no display; `fig.savefig` renders it with Agg."""
    from matplotlib.figure import Figure

    return Figure(**kw)


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
    """One panel per benchmark; bars per metric, one color per run, with 95% bootstrap intervals.
    runs: [(label, results)] where results is a results.json object."""
    import matplotlib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    benches: list[str] = []
    for _, res in runs:
        for b in res.get("benchmarks", {}):
            if b not in benches:
                benches.append(b)
    benches = benches or ["(none)"]
    ncols = min(4, len(benches))
    nrows = (len(benches) + ncols - 1) // ncols
    panel_w = 1.2 + 0.3 * len(metrics) * max(1, len(runs))
    fig = new_figure(figsize=(panel_w * ncols, 2.9 * nrows), dpi=110)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    width = 0.8 / max(1, len(runs))
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, b in enumerate(benches):
        ax = axes[n // ncols][n % ncols]
        shown = [m for m in metrics if any(m in r.get("benchmarks", {}).get(b, {}) for _, r in runs)]
        for j, (_, res) in enumerate(runs):
            bench = res.get("benchmarks", {}).get(b, {})
            xs, ys, errs = [], [], [[], []]
            for i, m in enumerate(shown):
                if bench.get(m) is None:
                    continue
                v = float(bench[m])
                lo, hi = _err(bench, m, v)
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(v)
                errs[0].append(lo)
                errs[1].append(hi)
            ax.bar(xs, ys, width=width * 0.92, yerr=errs, capsize=2, color=colors[j % len(colors)])
            for x, y in zip(xs, ys, strict=True):
                ax.text(x, min(y, 1.0) + 0.02, f"{y:.2f}", ha="center", va="bottom", fontsize=6)
        k = next((r["benchmarks"][b].get("k") for _, r in runs if b in r.get("benchmarks", {})), None)
        ax.set_xticks(range(len(shown)))
        ax.set_xticklabels([m.replace("@k", f"@{k}") if k else m for m in shown], fontsize=7)
        ax.set_ylim(0, 1.12)
        ax.set_title(b, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(axis="y", labelsize=7)
    for n in range(len(benches), nrows * ncols):
        axes[n // ncols][n % ncols].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    top = 1.0 - (0.35 if title else 0) / fig.get_figheight() - (0.3 if len(runs) > 1 else 0) / fig.get_figheight()
    if len(runs) > 1:
        from matplotlib.patches import Patch

        handles = [Patch(color=colors[j % len(colors)], label=label) for j, (label, _) in enumerate(runs)]
        fig.legend(handles=handles, fontsize=7, loc="upper center", ncol=min(6, len(runs)), frameon=False,
                   bbox_to_anchor=(0.5, top + 0.3 / fig.get_figheight()))
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path)
    return path
