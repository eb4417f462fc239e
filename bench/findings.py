"""The paper's findings at small scale: read finished r1cli run folders, write a PNG and a short markdown note.

Every number in a note is read from the run folders given on the command line (metrics.jsonl, results.json,
manifest.json); nothing is typed in. One JSON line of the figures goes to stdout.

    python bench/findings.py r1zero    --rl RUN/rl --eval-before RUN/eval_base --eval-after RUN/eval_rl --out DIR
    python bench/findings.py coldstart --rl-without RUN/rl_zero --rl-with RUN/rl --eval-base RUN/eval_base \
        --eval-coldstart RUN/eval_coldstart --eval-without RUN/eval_rl_zero --eval-with RUN/eval_rl --out DIR
    python bench/findings.py distill   --distill RUN/distill --rl RUN/rl_student --eval-student RUN/eval_student \
        --eval-distill RUN/eval_distill --eval-rl RUN/eval_rl_student --out DIR

(a) R1-Zero (paper Fig. 2 and 3): rollout accuracy and response length over RL steps, and held-out accuracy
    before/after. (b) Cold start (paper §2.3.1): RL from the cold-started model versus RL from the base at equal
    RL steps. (d) Distillation versus RL on the same student at (about) equal wall time (paper Table 6 question).
Finding (c), language consistency, is `bench/finding_language.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from r1cli.plots import new_figure  # noqa: E402
from r1cli.trainlog import read_metrics  # noqa: E402

ACC = "rewards/accuracy/mean"
LEN = "completions/mean_length"


def _manifest(run: Path) -> dict[str, Any]:
    p = Path(run) / "manifest.json"
    if not p.is_file():
        raise SystemExit(f"error: {run} has no manifest.json (not a finished r1cli run)")
    return json.loads(p.read_text(encoding="utf-8"))


def _bench(eval_run: Path) -> dict[str, Any]:
    """The first benchmark's metrics of an `r1 eval` run."""
    res = json.loads((Path(eval_run) / "results.json").read_text(encoding="utf-8"))
    name, b = next(iter(res["benchmarks"].items()))
    se = ((b.get("ci") or {}).get("pass@1") or {}).get("se")
    k = b.get("k")
    return {"benchmark": name, "n": b.get("n_problems"), "k": k, "pass@1": b["pass@1"], "pass@1_se": se,
            "cons@k": b.get("cons@k"), "format_rate": b.get("format_rate"), "mean_length": b.get("mean_length")}


def _curve(rl_run: Path, key: str) -> tuple[list[int], list[float]]:
    rows = [r for r in read_metrics(Path(rl_run) / "metrics.jsonl") if isinstance(r.get(key), (int, float))]
    return [int(r["step"]) for r in rows], [float(r[key]) for r in rows]


def _smooth(ys: list[float], w: int) -> list[float]:
    return [sum(ys[max(0, i - w + 1): i + 1]) / len(ys[max(0, i - w + 1): i + 1]) for i in range(len(ys))]


def _ends(ys: list[float], n: int = 10) -> tuple[float, float]:
    n = max(1, min(n, len(ys) // 2 or 1))
    return sum(ys[:n]) / n, sum(ys[-n:]) / n


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _acc_line(label: str, b: dict[str, Any]) -> str:
    se = f" ± {100 * b['pass@1_se']:.1f}" if b.get("pass@1_se") is not None else ""
    return (f"| {label} | {_pct(b['pass@1'])}{se} | {_pct(b.get('cons@k'))} | {_pct(b.get('format_rate'))} | "
            f"{b.get('mean_length') or 0:.0f} |")


TABLE_HEAD = "| model | pass@1 | cons@k | format | mean length (tokens) |\n|---|---|---|---|---|"


def _curves_png(arms: list[tuple[str, Path]], png: Path, title: str) -> None:
    fig = new_figure(figsize=(9, 3.4))
    axes = fig.subplots(1, 2)
    for label, run in arms:
        for ax, key in zip(axes, (ACC, LEN), strict=True):
            xs, ys = _curve(run, key)
            if not xs:
                continue
            (line,) = ax.plot(xs, ys, lw=0.8, alpha=0.35)
            ax.plot(xs, _smooth(ys, max(1, len(ys) // 15)), lw=2, color=line.get_color(), label=label)
    axes[0].set_title("rollout accuracy (training prompts)", fontsize=9)
    axes[1].set_title("mean response length (tokens)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def _bars_png(ax: Any, labels: list[str], benches: list[dict[str, Any]]) -> None:
    vals = [b["pass@1"] for b in benches]
    errs = [1.96 * (b.get("pass@1_se") or 0) for b in benches]
    ax.bar(range(len(vals)), vals, yerr=errs, capsize=3, color="#4c72b0")
    ax.set_xticks(range(len(vals)), labels, fontsize=8, rotation=15)
    ax.set_ylabel("held-out pass@1")
    ax.grid(axis="y", alpha=0.3)
    for i, v in enumerate(vals):
        ax.text(i, v, f"{100 * v:.1f}", ha="center", va="bottom", fontsize=8)


def r1zero(a: argparse.Namespace) -> dict[str, Any]:
    out = Path(a.out)
    _curves_png([("RL", Path(a.rl))], out / "finding_r1zero.png", "R1-Zero on the tiny base: accuracy and length rise")
    xs, acc = _curve(Path(a.rl), ACC)
    _, length = _curve(Path(a.rl), LEN)
    if not xs:
        raise SystemExit(f"error: {a.rl}/metrics.jsonl has no '{ACC}' rows")
    a0, a1 = _ends(acc)
    l0, l1 = _ends(length)
    m = _manifest(Path(a.rl))
    before, after = _bench(Path(a.eval_before)), _bench(Path(a.eval_after))
    fig = {"finding": "r1zero", "steps": xs[-1], "train_s": (m.get("timings") or {}).get("train"),
           "rollout_acc_first10": a0, "rollout_acc_last10": a1, "length_first10": l0, "length_last10": l1,
           "eval_before": before, "eval_after": after}
    note = f"""# Finding (a): R1-Zero — accuracy and response length over RL steps

RL run `{a.rl}`: {xs[-1]} GRPO steps, {fig['train_s'] or 0:.0f} s of training. Rollout accuracy (mean over the first
and last 10 steps): {_pct(a0)} → {_pct(a1)}; mean response length {l0:.0f} → {l1:.0f} tokens. Curves:
`finding_r1zero.png`.

Held-out ({before['benchmark']}, {before['n']} problems × k={before['k']}, T from the eval protocol):

{TABLE_HEAD}
{_acc_line('before RL', before)}
{_acc_line('after RL', after)}

As in the paper's Figures 2–3, accuracy and response length grow together. At this scale "thinking longer" means
the policy moves to the base's step-by-step solution style (see `r1cli/tinybase/`). The base was built to have
that style available, so this is selection of a behaviour that already exists. It is not emergence.
"""
    (out / "finding_r1zero.md").write_text(note, encoding="utf-8")
    return fig


def coldstart(a: argparse.Namespace) -> dict[str, Any]:
    out = Path(a.out)
    arms = [("RL from base (R1-Zero)", Path(a.rl_without)), ("RL after cold start", Path(a.rl_with))]
    _curves_png(arms, out / "finding_coldstart_curves.png", "Cold start vs none, equal RL steps")
    labels = ["base", "cold start", "RL from base", "cold start + RL"]
    benches = [_bench(Path(p)) for p in (a.eval_base, a.eval_coldstart, a.eval_without, a.eval_with)]
    f = new_figure(figsize=(5.5, 3.4))
    ax = f.subplots()
    _bars_png(ax, labels, benches)
    ax.set_title("cold start before RL (equal RL steps)", fontsize=10)
    f.tight_layout()
    f.savefig(out / "finding_coldstart.png", dpi=110)
    steps = [_manifest(Path(r)).get("metrics", {}).get("steps") for r in (a.rl_without, a.rl_with)]
    fig = {"finding": "coldstart", "rl_steps": steps, **{lab: b for lab, b in zip(labels, benches, strict=True)}}
    rows = "\n".join(_acc_line(lab, b) for lab, b in zip(labels, benches, strict=True))
    d = benches[3]["pass@1"] - benches[2]["pass@1"]
    note = f"""# Finding (b): cold start before RL versus none, at equal RL steps

RL steps: {steps[0]} (from base) and {steps[1]} (after cold start), same recipe and seed. Held-out
{benches[0]['benchmark']} ({benches[0]['n']} problems × k={benches[0]['k']}):

{TABLE_HEAD}
{rows}

Cold start + RL minus RL from base: {100 * d:+.1f} points pass@1. Bars: `finding_coldstart.png`. Training curves:
`finding_coldstart_curves.png`.
"""
    (out / "finding_coldstart.md").write_text(note, encoding="utf-8")
    return fig


def distill(a: argparse.Namespace) -> dict[str, Any]:
    out = Path(a.out)
    t_d = (_manifest(Path(a.distill)).get("timings") or {}).get("total")
    t_r = (_manifest(Path(a.rl)).get("timings") or {}).get("total")
    labels = ["student", "student + distill", "student + RL"]
    benches = [_bench(Path(p)) for p in (a.eval_student, a.eval_distill, a.eval_rl)]
    f = new_figure(figsize=(5, 3.4))
    ax = f.subplots()
    _bars_png(ax, labels, benches)
    ax.set_title(f"distillation ({t_d or 0:.0f} s) vs RL ({t_r or 0:.0f} s) on the student", fontsize=10)
    f.tight_layout()
    f.savefig(out / "finding_distill.png", dpi=110)
    fig = {"finding": "distill", "distill_s": t_d, "rl_s": t_r,
           **{lab: b for lab, b in zip(labels, benches, strict=True)}}
    rows = "\n".join(_acc_line(lab, b) for lab, b in zip(labels, benches, strict=True))
    d = benches[1]["pass@1"] - benches[2]["pass@1"]
    note = f"""# Finding (d): distillation versus RL on the small student, at about equal wall time

Wall time: distill {t_d or 0:.0f} s (teacher traces + SFT), RL {t_r or 0:.0f} s. Held-out
{benches[0]['benchmark']} ({benches[0]['n']} problems × k={benches[0]['k']}):

{TABLE_HEAD}
{rows}

Distillation minus RL: {100 * d:+.1f} points pass@1. Bars: `finding_distill.png`.
"""
    (out / "finding_distill.md").write_text(note, encoding="utf-8")
    return fig


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="finding", required=True)
    s = sub.add_parser("r1zero")
    for k in ("--rl", "--eval-before", "--eval-after", "--out"):
        s.add_argument(k, required=True)
    s = sub.add_parser("coldstart")
    for k in ("--rl-without", "--rl-with", "--eval-base", "--eval-coldstart", "--eval-without", "--eval-with", "--out"):
        s.add_argument(k, required=True)
    s = sub.add_parser("distill")
    for k in ("--distill", "--rl", "--eval-student", "--eval-distill", "--eval-rl", "--out"):
        s.add_argument(k, required=True)
    a = p.parse_args(argv)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    fig = {"r1zero": r1zero, "coldstart": coldstart, "distill": distill}[a.finding](a)
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
