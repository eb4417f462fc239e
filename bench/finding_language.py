"""Finding (c): RL with versus without the language-consistency reward — mixing rate, style share and accuracy.

Construction (see recipes/tiny/findings/ and `r1cli.tasks.arith`): the `tiny-lang` base is the `tiny` base whose
pretraining corpus writes 30% of its rows, of both solution styles, in their mixed version (arith's opt-in
`mixed_marker`: the Chinese opening line 嗯 before the style head, the rest identical). Mixing is then a first-token
choice of its own, apart from the style choice (which comes after it), and each style's two versions do the same
work. Two `r1 rl` arms from that base at equal steps, each with two seeds: accuracy + format, versus accuracy +
format + language_consistency (English target). `r1 eval` of the base and of every RL model on the same test
problems; this script scores every saved completion (samples.jsonl) with the very reward function, with the params
of a "with" run's config.

Per eval: mixing rate = share of completions whose chain of thought has language_consistency < 1 (± binomial SE);
style share = share of completions in the step-by-step style (either language) and in the terse one (either
language); mixing within each style; accuracy of each (style, language) cell; pass@1 ± its SE from results.json.
Per arm: the mean over seeds, with SE = max(seed SD / sqrt(n), eval SE of the mean) (two seeds make the seed SD
itself noisy; the eval SE is a floor). Training curves (rewards/*/mean per step) come from each RL run's
metrics.jsonl (the "without" arm logs the consistency with weight 0).

    python bench/finding_language.py RUN     # RUN/{eval_base, eval_without_s*, eval_with_s*, rl_without_s*, rl_with_s*}

Writes RUN/finding_language.png and RUN/finding_language.md; prints one JSON line of the figures on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

ARMS = ("without", "with")
LABELS = {"base": "base (before RL)", "without": "RL without LC", "with": "RL with LC"}
COLORS = {"base": "#888888", "without": "#d62728", "with": "#1f77b4"}
DEFAULT_LC = {"language": "en", "languages": ["en", "zh"]}  # used only when no "with" config is found
LC = "language_consistency"
FAMILY = {"detailed": "detailed", "detailed_mixed": "detailed", "mixed": "detailed",
          "terse": "terse", "terse_mixed": "terse"}
METRICS = ("pass@1", "mixing_rate", "detailed_share", "mean_consistency", "mean_length")


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


def _share(xs: list[bool]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def score_eval(eval_dir: Path, lc_params: dict[str, Any]) -> dict[str, Any]:
    """Mixing rate, style shares, per-(style, language) accuracy and pass@1 of one `r1 eval` run folder."""
    from r1cli.rewards import get_reward
    from r1cli.tasks import get_task

    fn = get_reward(LC, **lc_params)
    task = get_task("arith", mixed_style=True, mixed_marker=True)  # only to name the style of each completion
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
    cells: dict[str, list[bool]] = {}  # "detailed/en", "detailed/mixed", "terse/en", ..., "other/en"
    fam_mix: dict[str, list[bool]] = {}
    for t, c, m in zip(texts, correct, mixed, strict=True):
        fam = FAMILY.get(task.style_of(t) or "", "other")
        cells.setdefault(f"{fam}/{'mixed' if m else 'en'}", []).append(c)
        fam_mix.setdefault(fam, []).append(m)
    rate = sum(mixed) / n
    det = len(fam_mix.get("detailed", [])) / n
    ci = (bench.get("ci") or {}).get("pass@1") or {}
    return {
        "eval_dir": str(eval_dir),
        "model": results.get("model"),
        "n_problems": bench.get("n_problems"),
        "k": bench.get("k"),
        "completions": n,
        "pass@1": bench.get("pass@1"),
        "pass@1_se": ci.get("se"),
        "mean_length": bench.get("mean_length"),
        "mixing_rate": rate,
        "mixing_rate_se": math.sqrt(rate * (1 - rate) / n),
        "mean_consistency": sum(judged) / len(judged) if judged else None,
        "unjudged": n - len(judged),
        "detailed_share": det,
        "detailed_share_se": math.sqrt(det * (1 - det) / n),
        "style_share": {k: len(v) / n for k, v in sorted(fam_mix.items())},
        "mixing_by_style": {k: _share(v) for k, v in sorted(fam_mix.items())},
        "cell_share": {k: len(v) / n for k, v in sorted(cells.items())},
        "cell_accuracy": {k: _share(v) for k, v in sorted(cells.items())},
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


def arm_summary(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean over seeds of each metric, with SE = max(seed SD / sqrt(n), eval SE of the mean)."""
    out: dict[str, Any] = {"seeds": sorted(runs)}
    n = len(runs)
    for m in METRICS:
        vals = [r[m] for r in runs.values() if r.get(m) is not None]
        if not vals:
            continue
        mean = sum(vals) / len(vals)
        seed_se = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else 0.0
        ses = [r.get(f"{m}_se") for r in runs.values()]
        eval_se = math.sqrt(sum(s * s for s in ses)) / n if all(s is not None for s in ses) else 0.0
        out[m] = mean
        out[f"{m}_se"] = max(seed_se, eval_se)
    return out


def _pct(x: float | None, se: float | None = None) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f}%" + (f" ± {100 * se:.1f}" if se is not None else "")


def write_png(base: dict[str, Any] | None, figs: dict[str, dict[int, dict[str, Any]]],
              summ: dict[str, dict[str, Any]], curves: dict[str, dict[int, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ax, metric, title in ((axes[0], "mixing_rate", "mixing rate (CoTs with LC < 1)"),
                              (axes[1], "detailed_share", "step-by-step style share"),
                              (axes[2], "pass@1", "test pass@1")):
        labels, vals, errs, colors = [], [], [], []
        if base is not None:
            labels.append("base")
            vals.append(100 * base[metric])
            errs.append(100 * (base.get(f"{metric}_se") or 0.0))
            colors.append(COLORS["base"])
        for arm in ARMS:
            if arm not in summ or metric not in summ[arm]:
                continue
            labels.append(f"{LABELS[arm]}\n(mean of {len(figs[arm])})")
            vals.append(100 * summ[arm][metric])
            errs.append(100 * summ[arm][f"{metric}_se"])
            colors.append(COLORS[arm])
        x = list(range(len(labels)))
        ax.bar(x, vals, yerr=errs, capsize=4, color=colors, alpha=0.8)
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.1f}%", ha="center", va="bottom")
        for arm in ARMS:  # each seed as a dot over its arm's bar
            if arm in figs:
                i = labels.index(next(lab for lab in labels if lab.startswith(LABELS[arm])))
                ax.plot([i] * len(figs[arm]), [100 * r[metric] for r in figs[arm].values()], "ko", ms=4)
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_title(title)
        ax.set_ylabel("%")
    ax = axes[3]
    for arm in ARMS:
        for seed, c in sorted(curves.get(arm, {}).items()):
            if not c:
                continue
            ax.plot(c["step"], c["accuracy"], color=COLORS[arm], alpha=0.8,
                    label=f"{LABELS[arm]}: accuracy" if seed == min(curves[arm]) else None)
            ax.plot(c["step"], [1 - x for x in c["consistency"]], color=COLORS[arm], ls="--", alpha=0.8,
                    label=f"{LABELS[arm]}: 1 - LC" if seed == min(curves[arm]) else None)
    ax.set_xlabel("RL step")
    ax.set_title("training rollouts (T=1), every seed")
    ax.legend(fontsize=7)
    fig.suptitle("Language-consistency reward on the tiny-lang base (finding c): mixing is a choice apart from the style")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _row(label: str, f: dict[str, Any]) -> str:
    ca, cs = f["cell_accuracy"], f["cell_share"]
    cells = " | ".join(f"{_pct(cs.get(c, 0.0))} @ {_pct(ca.get(c))}" for c in
                       ("detailed/en", "detailed/mixed", "terse/en", "terse/mixed"))
    return (f"| {label} | {_pct(f['mixing_rate'], f['mixing_rate_se'])} | "
            f"{_pct(f['detailed_share'], f['detailed_share_se'])} | {_pct(f['pass@1'], f['pass@1_se'])} | {cells} | "
            f"{f['mean_length']:.1f} |")


def write_md(base: dict[str, Any] | None, figs: dict[str, dict[int, dict[str, Any]]],
             summ: dict[str, dict[str, Any]], summary: dict[str, Any], path: Path) -> Path:
    lines = [
        "# Finding (c): the language-consistency reward — mixing rate, style share and test accuracy",
        "",
        "## Construction",
        "",
        "- Task: built-in `arith` (running sum of 6-8 signed digits), two solution styles chosen by the first line "
        "of the CoT: step by step (`Step by step:`, one line per step) or terse (`All at once.`, the answer at once).",
        "- Mixing as its own choice: arith's opt-in `mixed_marker` gives each style a mixed version that opens with "
        "the Chinese line `嗯` before the style head; the rest is identical. The language choice is the first token "
        "of the CoT, made before the style choice and shared by neither English head, so a policy can move it "
        "without moving the style; both styles can mix, so dropping a style does not remove mixing.",
        f"- Base `tiny-lang` ({summary.get('base_build') or 'build manifest not found'}): the `tiny` base recipe, "
        "except that a share `mixed_share` of all pretraining rows (either style) is written in the mixed version.",
        f"- RL: two arms from that base with identical settings and steps ({summary.get('rl_steps')}), seeds "
        f"{summary.get('seeds')}; rewards accuracy + 0.2 format, versus the same plus `language_consistency` "
        f"(English target, candidates en/zh) with weight {summary['lc_weight']} (params from {summary['lc_source']}).",
        "- Measurement: `r1 eval` (T=0.6, top-p 0.95, k=4) on the same test problems for every model; each saved "
        "completion is scored with the very `language_consistency` reward. Mixing rate = share of completions with "
        "consistency < 1; step-by-step share = share of completions in that style, either language.",
        "",
    ]
    rep = summary.get("base_report")
    if rep:
        forced = {k.removeprefix("forced_").removesuffix("_T1"): v for k, v in rep.items() if k.startswith("forced_")}
        lines += ["## The base, per (style, language)", "",
                  "Accuracy with the CoT's head forced (T=1, 1,000 test problems each; from "
                  "base_report.json):", ""]
        lines += ["| forced version | accuracy | mean length |", "|---|---|---|"]
        for k, v in forced.items():
            lines.append(f"| {k} | {_pct(v['accuracy'], v.get('stderr'))} | {v['mean_length']:.1f} |")
        for st in ("detailed", "terse"):
            en, mx = forced.get(st), forced.get(f"{st}_mixed")
            if en and mx:
                d = en["accuracy"] - mx["accuracy"]
                se = math.hypot(en.get("stderr") or 0.0, mx.get("stderr") or 0.0)
                lines.append(f"\n{st}: English minus mixed {100 * d:+.1f} ± {100 * se:.1f} points"
                             + (" (within 2 SE: equally accurate)." if abs(d) <= 2 * se else " (more than 2 SE)."))
        lines += ["", f"Natural sampling at T=1: {_pct(rep['T1']['accuracy'], rep['T1'].get('stderr'))}, versions "
                  + ", ".join(f"{k} {_pct(v)}" for k, v in rep["T1"]["style_share"].items()) + ".", ""]
    lines += [
        "## Numbers (read from the run folders)",
        "",
        "Per model: mixing rate, step-by-step share, pass@1 (each ± SE), then each (style, language) cell as "
        "share of completions @ its accuracy.",
        "",
        "| model | mixing rate | step-by-step share | pass@1 | detailed/en | detailed/mixed | terse/en | terse/mixed "
        "| mean length |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    if base is not None:
        lines.append(_row(LABELS["base"], base))
    for arm in ARMS:
        for seed, f in sorted(figs.get(arm, {}).items()):
            lines.append(_row(f"{LABELS[arm]}, seed {seed}", f))
    lines += ["", "Arm means over seeds (SE = max(seed SD / sqrt(n), eval SE of the mean)):", "",
              "| arm | seeds | mixing rate | step-by-step share | pass@1 | mean length |", "|---|---|---|---|---|---|"]
    for arm in ARMS:
        if arm in summ:
            s = summ[arm]
            lines.append(f"| {LABELS[arm]} | {s['seeds']} | {_pct(s['mixing_rate'], s['mixing_rate_se'])} | "
                         f"{_pct(s['detailed_share'], s['detailed_share_se'])} | {_pct(s['pass@1'], s['pass@1_se'])} | "
                         f"{s['mean_length']:.1f} |")
    some = base or next(iter(next(iter(figs.values())).values()))
    lines += ["", f"{some['n_problems']} test problems x k={some['k']} per model.", ""]
    if "d_pass" in summary:
        d, se = summary["d_pass"], summary["d_pass_se"]
        verdict = ("within 2 SE of zero: the paper's \"slight degradation\" does not appear at this size"
                   if abs(d) <= 2 * se else
                   ("lower with the reward by more than 2 SE: the paper's \"slight degradation\" appears" if d < 0
                    else "higher with the reward by more than 2 SE: no \"slight degradation\" (the reverse)"))
        dm, dmse = summary["d_mixing"], summary["d_mixing_se"]
        ds, dsse = summary["d_detailed"], summary["d_detailed_se"]
        lines += [
            "## Reading",
            "",
            f"- Mixing: {_pct(base['mixing_rate']) if base else '–'} before RL, "
            f"{_pct(summ['without']['mixing_rate'])} after RL without the reward, "
            f"{_pct(summ['with']['mixing_rate'])} with it ({100 * dm:+.1f} ± {100 * dmse:.1f} points).",
            f"- Style: step-by-step share {_pct(base['detailed_share']) if base else '–'} before RL, "
            f"{_pct(summ['without']['detailed_share'])} without, {_pct(summ['with']['detailed_share'])} with "
            f"({100 * ds:+.1f} ± {100 * dsse:.1f} points): "
            + ("the reward did not move the style (within 2 SE)." if abs(ds) <= 2 * dsse else
               "the reward moved the style (more than 2 SE)."),
            f"- Accuracy: pass@1 {_pct(summ['without']['pass@1'])} without, {_pct(summ['with']['pass@1'])} with: "
            f"difference {100 * d:+.1f} ± {100 * se:.1f} points, {verdict}.",
            "",
        ]
    while lines and not lines[-1]:
        lines.pop()
    for arm in ARMS:
        cs = [c for c in summary.get("curves", {}).get(arm, {}).values() if c and len(c["step"]) >= 10]
        if cs:
            def ends(key: str, cs: list = cs) -> str:
                first = sum(sum(c[key][:5]) / 5 for c in cs) / len(cs)
                last = sum(sum(c[key][-5:]) / 5 for c in cs) / len(cs)
                return f"{first:.3g} → {last:.3g}"

            lines.append(f"- Training rollouts, {LABELS[arm]} (first 5 → last 5 steps, mean of {len(cs)} seeds): "
                         f"accuracy {ends('accuracy')}, consistency {ends('consistency')}, length {ends('length')}.")
    lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _seeded(run: Path, prefix: str) -> dict[int, Path]:
    out = {}
    for d in sorted(run.glob(f"{prefix}_s*")):
        m = re.fullmatch(rf"{prefix}_s(\d+)", d.name)
        if m and d.is_dir():
            out[int(m.group(1))] = d
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path,
                    help="folder holding eval_base, eval_{without,with}_s<seed>, rl_{without,with}_s<seed>")
    ap.add_argument("--base-report", type=Path, default=None,
                    help="the base's style report JSON line (default: RUN/base_report.json, if present)")
    ap.add_argument("--out", type=Path, default=None, help="where to write the PNG and note (default: RUN)")
    a = ap.parse_args(argv)
    out = a.out or a.run
    rls = {arm: _seeded(a.run, f"rl_{arm}") for arm in ARMS}
    evals = {arm: _seeded(a.run, f"eval_{arm}") for arm in ARMS}
    with_cfg = next(iter(rls["with"].values()), None)
    params, weight, source = lc_spec(with_cfg)
    base_dir = a.run / "eval_base"
    base = score_eval(base_dir, params) if (base_dir / "results.json").is_file() else None
    figs = {arm: {s: score_eval(d, params) for s, d in evals[arm].items() if (d / "results.json").is_file()}
            for arm in ARMS}
    figs = {arm: v for arm, v in figs.items() if v}
    if not figs and base is None:
        print(f"finding_language: no eval results under {a.run}", file=sys.stderr)
        raise SystemExit(3)
    missing = [arm for arm in ARMS if arm not in figs]
    if missing:
        print(f"finding_language: no eval results for {', '.join(missing)}", file=sys.stderr)
    summ = {arm: arm_summary(v) for arm, v in figs.items()}
    curves = {arm: {s: rl_curve(d) for s, d in rls[arm].items()} for arm in ARMS}
    summary: dict[str, Any] = {
        "lc_params": params, "lc_weight": weight, "lc_source": source,
        "seeds": sorted({s for v in figs.values() for s in v}),
        "rl_steps": {arm: sorted({c["step"][-1] for c in cs.values() if c}) for arm, cs in curves.items()},
        "base_build": base_build(base.get("model") if base else None),
    }
    report_path = a.base_report or a.run / "base_report.json"
    if report_path.is_file() and report_path.stat().st_size:
        summary["base_report"] = json.loads(report_path.read_text(encoding="utf-8").strip().splitlines()[-1])
    if "without" in summ and "with" in summ:
        w, wo = summ["with"], summ["without"]
        for key, m in (("d_pass", "pass@1"), ("d_mixing", "mixing_rate"), ("d_detailed", "detailed_share")):
            summary[key] = w[m] - wo[m]
            summary[f"{key}_se"] = math.hypot(w[f"{m}_se"], wo[f"{m}_se"])
    png = write_png(base, figs, summ, curves, out / "finding_language.png")
    md = write_md(base, figs, summ, {**summary, "curves": curves}, out / "finding_language.md")
    keep = ("pass@1", "pass@1_se", "mixing_rate", "mixing_rate_se", "detailed_share", "mean_consistency",
            "mixing_by_style", "cell_accuracy", "mean_length")
    line = {"finding": "language_consistency", **{k: v for k, v in summary.items() if k != "base_report"},
            "png": str(png), "note": str(md),
            "base": {k: base[k] for k in keep} if base else None,
            **{arm: {"mean": summ[arm], **{f"s{s}": {k: f[k] for k in keep} for s, f in figs[arm].items()}}
               for arm in figs}}
    print(json.dumps(line, ensure_ascii=False))
    return line


if __name__ == "__main__":
    main()
