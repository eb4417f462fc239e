"""Finding (c): RL with versus without the language-consistency reward — mixing rate and accuracy.

Construction (see recipes/tiny/findings/ and `r1cli.tasks.arith`): the `tiny-mix` base is the `tiny` base whose
pretraining corpus writes half of its step-by-step (`detailed`) solutions in arith's opt-in `mixed` style — the same
steps with Chinese words ("Step by step 逐步:", lines `b: 7-3得到4`) — so the two versions are equally accurate
and differ only in the language of the chain of thought; the terse style ("All at once.") is English. Two `r1 rl`
runs from that base at equal steps: accuracy + format, versus accuracy + format + language_consistency (English
target). `r1 eval` of the base and of both RL models on the same held-out problems; this script scores every saved
completion (samples.jsonl) with the very reward function, with the params of the "with" arm's recipe.

Mixing rate = share of completions whose chain of thought has language_consistency < 1 (at least one non-English
word); also reported: mean consistency, the share of each solution style, and pass@1 (from results.json, with its
standard error). Training curves (rewards/*/mean per step) come from each RL run's metrics.jsonl (the "without" arm
logs the consistency with weight 0).

    python bench/finding_language.py RUN            # RUN/{eval_base,eval_without,eval_with,rl_without,rl_with}
    python bench/finding_language.py RUN --with-eval DIR ...   # any folder elsewhere

Writes RUN/finding_language.png and RUN/finding_language.md; prints one JSON line of the figures on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

ARMS = ("base", "without", "with")
LABELS = {"base": "base (before RL)", "without": "RL without LC", "with": "RL with LC"}
DEFAULT_LC = {"language": "en", "languages": ["en", "zh"]}  # used only when no "with" recipe is found
LC = "language_consistency"


def lc_spec(rl_dir: Path | None) -> tuple[dict[str, Any], float | None, str]:
    """The language_consistency params and weight of an RL run's config.yaml (and where they came from)."""
    if rl_dir is not None and (rl_dir / "config.yaml").is_file():
        import yaml

        cfg = yaml.safe_load((rl_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        for r in cfg.get("rewards") or []:
            if isinstance(r, dict) and r.get("name") == LC:
                return dict(r.get("params") or {}), float(r.get("weight", 1.0)), str(rl_dir / "config.yaml")
    return dict(DEFAULT_LC), None, "default (no RL config with language_consistency found)"


def _bench_entry(results: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    benches = results.get("benchmarks") or {}
    if not benches:
        raise SystemExit("results.json has no benchmark")
    name = next(iter(benches))
    return name, benches[name]


def score_eval(eval_dir: Path, lc_params: dict[str, Any]) -> dict[str, Any]:
    """Mixing rate, mean consistency, style shares and accuracy of one `r1 eval` run folder."""
    from r1cli.rewards import get_reward
    from r1cli.tasks import get_task

    fn = get_reward(LC, **lc_params)
    task = get_task("arith", mixed_style=True)  # only to name the style of each completion
    results = json.loads((eval_dir / "results.json").read_text(encoding="utf-8"))
    name, bench = _bench_entry(results)
    texts, correct = [], []
    with open(eval_dir / "samples.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("benchmark") != name:
                continue
            for s in rec["samples"]:
                texts.append(s["completion"])
                correct.append(bool(s["correct"]))
    if not texts:
        raise SystemExit(f"{eval_dir}: no completions in samples.jsonl")
    scores = fn(texts)
    judged = [s for s in scores if s is not None]
    mixed = [s is not None and s < 1.0 for s in scores]
    n = len(texts)
    styles: dict[str, list[bool]] = {}
    for t, c in zip(texts, correct, strict=True):
        styles.setdefault(task.style_of(t) or "other", []).append(c)
    rate = sum(mixed) / n
    acc_mixed = [c for c, m in zip(correct, mixed, strict=True) if m]
    acc_clean = [c for c, m, s in zip(correct, mixed, scores, strict=True) if not m and s is not None]
    ci = (bench.get("ci") or {}).get("pass@1") or {}
    return {
        "eval_dir": str(eval_dir),
        "model": results.get("model"),
        "n_problems": bench.get("n_problems"),
        "k": bench.get("k"),
        "completions": n,
        "pass@1": bench.get("pass@1"),
        "pass@1_se": ci.get("se"),
        "cons@k": bench.get("cons@k"),
        "mean_length": bench.get("mean_length"),
        "mixing_rate": rate,
        "mixing_rate_se": math.sqrt(rate * (1 - rate) / n),
        "mean_consistency": sum(judged) / len(judged) if judged else None,
        "unjudged": n - len(judged),
        "accuracy_when_mixed": sum(acc_mixed) / len(acc_mixed) if acc_mixed else None,
        "accuracy_when_english": sum(acc_clean) / len(acc_clean) if acc_clean else None,
        "style_share": {k: len(v) / n for k, v in sorted(styles.items())},
        "style_accuracy": {k: sum(v) / len(v) for k, v in sorted(styles.items())},
    }


def rl_curve(rl_dir: Path | None) -> dict[str, list[float]] | None:
    """Per-step means from an RL run's metrics.jsonl (accuracy, consistency, completion length)."""
    if rl_dir is None or not (rl_dir / "metrics.jsonl").is_file():
        return None
    keys = {"accuracy": "rewards/accuracy/mean", "consistency": f"rewards/{LC}/mean",
            "length": "completions/mean_length"}
    out: dict[str, list[float]] = {"step": [], **{k: [] for k in keys}}
    for line in (rl_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if keys["accuracy"] not in rec:
            continue
        out["step"].append(rec["step"])
        for k, m in keys.items():
            out[k].append(float(rec.get(m, float("nan"))))
    return out if out["step"] else None


def base_build(model: str | None) -> str | None:
    """The base's construction, from its tiny-base build manifest (folder or r1cli run folder with model/)."""
    if not model:
        return None
    from r1cli.tinybase import build_info

    info = build_info(model) or build_info(Path(model) / "model")
    if not info:
        return None
    pc = info.get("preset_config") or {}
    return (f"detailed_share {pc.get('detailed_share')} (start {pc.get('detailed_share_start')}), mixed_share "
            f"{pc.get('mixed_share', 0.0)}, task_params {dict(pc.get('task_params') or ())}, "
            f"{info.get('train_steps')} steps, {info.get('params')} params")


def _pct(x: float | None, se: float | None = None) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f}%" + (f" ± {100 * se:.1f}" if se is not None else "")


def write_png(figs: dict[str, dict[str, Any]], curves: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    has_curves = any(curves.values())
    fig, axes = plt.subplots(1, 3 if has_curves else 2, figsize=(14 if has_curves else 9, 4))
    arms = [a for a in ARMS if a in figs]
    colors = {"base": "#888888", "without": "#d62728", "with": "#1f77b4"}
    for ax, metric, title in ((axes[0], "mixing_rate", "mixing rate (CoTs with LC < 1)"),
                              (axes[1], "pass@1", "held-out pass@1")):
        vals = [100 * figs[a][metric] for a in arms]
        errs = [100 * (figs[a].get(f"{metric}_se") or 0.0) for a in arms]
        ax.bar([LABELS[a] for a in arms], vals, yerr=errs, capsize=4, color=[colors[a] for a in arms])
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.1f}%", ha="center", va="bottom")
        ax.set_title(title)
        ax.set_ylabel("%")
        ax.tick_params(axis="x", labelsize=8)
    if has_curves:
        ax = axes[2]
        for arm, c in curves.items():
            if not c:
                continue
            ax.plot(c["step"], c["accuracy"], color=colors[arm], label=f"{LABELS[arm]}: accuracy")
            ax.plot(c["step"], [1 - x for x in c["consistency"]], color=colors[arm], ls="--",
                    label=f"{LABELS[arm]}: 1 - LC (mixed words)")
        ax.set_xlabel("RL step")
        ax.set_title("training rollouts (T=1)")
        ax.legend(fontsize=7)
    fig.suptitle("Language-consistency reward on the tiny-mix base (finding c)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_md(figs: dict[str, dict[str, Any]], summary: dict[str, Any], path: Path) -> Path:
    arms = [a for a in ARMS if a in figs]
    lines = [
        "# Finding (c): the language-consistency reward — mixing rate and accuracy",
        "",
        "## Construction",
        "",
        "- Task: built-in `arith` (running sum of 6-8 signed digits). Its opt-in `mixed` style is the step-by-step "
        "solution with Chinese words: head `Step by step 逐步:`, lines `b: 7-3得到4` instead of `b: 7-3=4`; "
        "numbers stay digits, so the work is identical and only the CoT's language differs.",
        f"- Base `tiny-mix` ({summary.get('base_build', 'build manifest not found')}): the `tiny` base recipe, except "
        "that a share `mixed_share` of the detailed rows of its pretraining corpus is written in the mixed version "
        "(separate RNG: the detailed/terse choice of every row is the `tiny` one). Its tokenizer learns the Chinese "
        "words. Nothing else in the corpus is Chinese.",
        f"- RL: two `r1 rl` runs from that base with identical settings and steps ({summary.get('rl_steps')}); "
        "rewards accuracy + 0.2 format, "
        "versus the same plus `language_consistency` (English target, candidates en/zh) with weight "
        f"{summary['lc_weight']} (params from {summary['lc_source']}).",
        "- Measurement: `r1 eval` (T=0.6, top-p 0.95) on the same held-out problems for all three models; every "
        "saved completion is scored with the very `language_consistency` reward. Mixing rate = share of "
        "completions with consistency < 1 (± binomial SE); pass@1 ± its SE from results.json.",
        "",
        "## Numbers (read from the run folders)",
        "",
        "| model | mixing rate | mean LC | pass@1 | acc. mixed CoTs | acc. English CoTs | styles (detailed/mixed/terse) "
        "| mean length |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a in arms:
        f = figs[a]
        ss = f["style_share"]
        lines.append(
            f"| {LABELS[a]} | {_pct(f['mixing_rate'], f['mixing_rate_se'])} | "
            f"{f['mean_consistency']:.3f} | {_pct(f['pass@1'], f['pass@1_se'])} | {_pct(f['accuracy_when_mixed'])} | "
            f"{_pct(f['accuracy_when_english'])} | {_pct(ss.get('detailed', 0))} / {_pct(ss.get('mixed', 0))} / "
            f"{_pct(ss.get('terse', 0))} | {f['mean_length']:.1f} |"
        )
    lines += ["", f"{figs[arms[0]]['n_problems']} held-out problems x k={figs[arms[0]]['k']} per model; models "
              "evaluated: " + "; ".join(f"{LABELS[a]} = `{figs[a]['model']}`" for a in arms) + ".", ""]
    if "without" in figs and "with" in figs:
        d = summary["pass@1_with_minus_without"]
        se = summary["pass@1_diff_se"]
        dm = summary["mixing_with_minus_without"]
        verdict_acc = ("within 2 SE (no measurable cost)" if abs(d) <= 2 * se
                       else ("lower with the reward" if d < 0 else "higher with the reward"))
        lines += [
            "## Reading",
            "",
            f"- Mixing: {_pct(figs['base']['mixing_rate']) if 'base' in figs else '–'} before RL, "
            f"{_pct(figs['without']['mixing_rate'])} after RL without the reward, "
            f"{_pct(figs['with']['mixing_rate'])} with it (difference {100 * dm:+.1f} points).",
            "- Step-by-step CoTs (detailed + mixed): " + ", ".join(
                f"{LABELS[a]} {_pct(figs[a]['style_share'].get('detailed', 0) + figs[a]['style_share'].get('mixed', 0))}"
                for a in arms) + "; mean length " + ", ".join(f"{figs[a]['mean_length']:.1f}" for a in arms)
            + " tokens.",
            f"- Accuracy: pass@1 with minus without = {100 * d:+.1f} ± {100 * se:.1f} points: {verdict_acc}. "
            "The paper (§2.3.3) reports a slight degradation with the reward.",
            "- Design caveat: the mixed head (`Step by step 逐步:`) shares its first tokens with the English detailed "
            "head, so a penalty on the mixed variant can land on the step-by-step choice itself (compare the "
            "step-by-step shares above); the eval samples at T=0.6, which sharpens what the T=1 rollouts show.",
            "- Caveat: one seed per arm, a synthetic two-language corpus where both languages are equally "
            "accurate by construction; the mixing the reward removes here is planted in pretraining, not emergent.",
        ]
    rep = summary.get("base_report")
    if rep:
        forced = {k[len("forced_"):-len("_T1")]: v for k, v in rep.items() if k.startswith("forced_")}
        lines += ["", "## The base's style report (`python -m r1cli.tinybase`, T=1, forced first line)", "",
                  "; ".join(f"{s}: {_pct(v['accuracy'], v.get('stderr'))}" for s, v in forced.items())
                  + f"; natural T=1: {_pct(rep['T1']['accuracy'])} with styles "
                  + ", ".join(f"{k} {_pct(v)}" for k, v in rep["T1"]["style_share"].items()) + "."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="folder holding eval_base, eval_without, eval_with, rl_without, rl_with")
    for arm in ARMS:
        ap.add_argument(f"--{arm}-eval", type=Path, default=None, help=f"eval run of {LABELS[arm]}")
    for arm in ("without", "with"):
        ap.add_argument(f"--{arm}-rl", type=Path, default=None, help=f"RL run of the '{arm}' arm")
    ap.add_argument("--base-report", type=Path, default=None,
                    help="the base's style report JSON line (default: RUN/base_report.json, if present)")
    ap.add_argument("--out", type=Path, default=None, help="where to write the PNG and note (default: RUN)")
    a = ap.parse_args(argv)
    out = a.out or a.run
    evals = {arm: getattr(a, f"{arm}_eval") or a.run / f"eval_{arm}" for arm in ARMS}
    rls = {arm: getattr(a, f"{arm}_rl") or a.run / f"rl_{arm}" for arm in ("without", "with")}
    rls = {k: (v if v.is_dir() else None) for k, v in rls.items()}
    params, weight, source = lc_spec(rls["with"])
    figs = {arm: score_eval(d, params) for arm, d in evals.items() if (d / "results.json").is_file()}
    missing = [arm for arm in ARMS if arm not in figs]
    if missing:
        print(f"finding_language: no eval results for {', '.join(missing)} "
              f"({', '.join(str(evals[m]) for m in missing)})", file=sys.stderr)
        if len(figs) == 0:
            raise SystemExit(3)
    curves = {arm: rl_curve(d) for arm, d in rls.items()}
    for arm, c in curves.items():  # an arm evaluated at a checkpoint: its curve up to that step
        m = re.search(r"checkpoint-(\d+)", str(figs.get(arm, {}).get("model") or ""))
        if c and m:
            keep = [i for i, st in enumerate(c["step"]) if st <= int(m.group(1))]
            curves[arm] = {k: [v[i] for i in keep] for k, v in c.items()}
    summary: dict[str, Any] = {"lc_params": params, "lc_weight": weight, "lc_source": source,
                               "rl_steps": {arm: (c["step"][-1] if c else None) for arm, c in curves.items()}}
    summary["base_build"] = base_build(figs.get("base", {}).get("model"))
    report_path = a.base_report or a.run / "base_report.json"
    if report_path.is_file() and report_path.stat().st_size:
        summary["base_report"] = json.loads(report_path.read_text(encoding="utf-8").strip().splitlines()[-1])
    if "without" in figs and "with" in figs:
        w, wo = figs["with"], figs["without"]
        summary["pass@1_with_minus_without"] = w["pass@1"] - wo["pass@1"]
        summary["pass@1_diff_se"] = math.hypot(w["pass@1_se"] or 0.0, wo["pass@1_se"] or 0.0)
        summary["mixing_with_minus_without"] = w["mixing_rate"] - wo["mixing_rate"]
    png = write_png(figs, curves, out / "finding_language.png")
    md = write_md(figs, summary, out / "finding_language.md")
    keep = ("pass@1", "pass@1_se", "mixing_rate", "mixing_rate_se", "mean_consistency", "style_share", "mean_length")
    line = {"finding": "language_consistency", **{k: v for k, v in summary.items() if k != "base_report"}, "png": str(png), "note": str(md),
            **{arm: {k: f[k] for k in keep} for arm, f in figs.items()}}
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
