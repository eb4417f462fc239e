"""`r1 eval`: R1's evaluation protocol on built-in tasks and math benchmarks; `r1 eval compare RUN...`.

Protocol (paper §3, DeepSeek-R1 model card): sampling at temperature 0.6, top-p 0.95, k samples per problem
(4; 64 for AIME), no system prompt, the user turn followed by "Please reason step by step, and put your final
answer within \\boxed{}." for math benchmarks. Built-in tasks are asked with the chat template and no instruction
(the tiny model answers `<think>…</think><answer>N</answer>`); their problems are the task's test split drawn with
seed 0, so runs with different sampling seeds compare on the same problems. A chat template that prefills
`<think>` (R1-distill style), or `think_prefix: true`, leaves the opening tag in the prompt: it is put back in
front of the completion before the answer is extracted and the format is scored.

Grading: answers are extracted by `r1cli.grading.answers.extract_answer` (no answer from inside the think block,
no hedging) and judged by the grading engine (`grade`, math-verify equivalence) for math benchmarks, or by the
task's own verifier for built-in tasks (countdown accepts any valid expression). cons@k clusters answers with
`cluster_answers` (math equivalence). A gold answer the engine cannot parse makes that problem's samples wrong and
is counted in `ungradable`. Metrics and intervals: `r1cli.evaluation`.

Outputs in the run folder: `samples.jsonl` (one fsync'd line per finished problem: every completion, its
extracted answer, verdict, cluster, format score, length, finish reason), `results.json` (metrics with standard
errors and 95% bootstrap intervals, per benchmark; `--json` prints it), `report.md` (a table) and `results.png`.
Resuming (`--resume`) reads `samples.jsonl`, drops a torn last line, and generates only the problems without a
record; records made under a different protocol (model, k, sampling, template) are refused.

`--oracle` grades each problem's reference `solution` as if a model had written it (k = 1), which checks the
grading pipeline itself: MATH-500 ≥ 99% and GSM8K 100% pass@1 are expected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from r1cli.console import log
from r1cli.errors import InputArtifactError, UsageError
from r1cli.evaluation import Grader  # noqa: F401  (grading lives beside the metrics: `r1 rl`'s held-out eval uses it)
from r1cli.runs import KeyedLog, RunDir, atomic_write_text, resolve_input

SAMPLES = "samples.jsonl"
RESULTS = "results.json"
REPORT = "report.md"
CHART = "results.png"
TABLE_METRICS = ("pass@1", "cons@k", "pass@k", "format_rate", "mean_length", "median_length", "truncation_rate")
SHORT = {"format_rate": "format", "mean_length": "length", "truncation_rate": "truncated"}
COMPARE_METRICS = ("pass@1", "cons@k", "pass@k", "format_rate", "mean_length", "truncation_rate")  # rates in %


# ---------------------------------------------------------------------------------------------- samples log


def protocol_key(cfg: Any, bench: Any, k: int, prompt: str) -> str:
    """What a record depends on: a resumed run must match it."""
    blob = json.dumps(
        [cfg.model, cfg.oracle, k, cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.seed, bench.name,
         bench.source, prompt if not cfg.oracle else ""],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- stage


def load_benchmarks(cfg: Any) -> list[Any]:
    from r1cli.models import PRESETS
    from r1cli.tasks.benchmarks import load_benchmark

    if not cfg.oracle and cfg.model not in PRESETS:
        # a missing or unfinished model fails first, in one line; presets are built (minutes) only after the
        # benchmarks are known to be good
        resolve_input(cfg.model, "model", name="model")
    benches = []
    for spec in dict.fromkeys(cfg.benchmarks):
        _check_benchmark_path(spec)
        b = load_benchmark(spec, columns=cfg.columns or None, limit=cfg.limit, seed=0,
                           task_params=cfg.task_params or None)
        if cfg.oracle and not b.has_solutions:
            raise UsageError(
                f"--oracle: benchmark {b.name!r} has no reference `solution` for every row",
                hint="map a solution column (columns: {solution: ...}) or drop --oracle",
            )
        benches.append(b)
        log(f"benchmark {b.name}: {len(b.rows)} problems from {b.source}")
    return benches


def dry_run(cfg: Any, n: int, inputs: Any) -> Any:
    from r1cli.dryrun import sampling_dry_run
    from r1cli.models import load_tokenizer

    benches = load_benchmarks(cfg)
    tok = load_tokenizer(cfg)
    prompts = [cfg.render(row["prompt"], builtin_task=b.kind == "task", tokenizer=tok)
               for b in benches for row in b.rows]
    return sampling_dry_run("eval", cfg, tok, prompts[:n])


def run(cfg: Any, run: RunDir) -> dict[str, Any]:
    from r1cli.console import held_logs
    from r1cli.evaluation import problem_result, summarize

    model = tok = None
    with held_logs():  # a bad benchmark or model leaves its error line alone on stderr
        with run.timed("load_benchmarks"):
            benches = load_benchmarks(cfg)
        if not cfg.oracle:
            from r1cli.models import load_model, load_tokenizer, model_ref, resolve_model

            run.add_input(model_ref(cfg.model))
            with run.timed("load_model"):
                if cfg.backend == "vllm":
                    model, tok = resolve_model(cfg.model), load_tokenizer(cfg)  # an adapter is merged for vLLM
                else:
                    model, tok = load_model(cfg)
    samples = KeyedLog(run.path / SAMPLES, group_field="benchmark")
    results: dict[str, Any] = {
        "model": None if cfg.oracle else cfg.model,
        "oracle": bool(cfg.oracle),
        "protocol": {
            "temperature": cfg.temperature, "top_p": cfg.top_p, "max_new_tokens": cfg.max_new_tokens,
            "seed": cfg.seed, "template": cfg.template, "instruction": cfg.instruction,
            "think_prefix": cfg.think_prefix, "backend": cfg.backend,
        },
        "benchmarks": {},
    }
    try:
        for b in benches:
            k = 1 if cfg.oracle else (cfg.k or b.default_k)
            grader = Grader(b)
            builtin = b.kind == "task"
            prompts = [row["prompt"] if cfg.oracle else cfg.render(row["prompt"], builtin_task=builtin, tokenizer=tok)
                       for row in b.rows]
            keys = [protocol_key(cfg, b, k, p) for p in prompts]
            todo = samples.todo(b.name, keys, f"{b.name} problem")
            if len(todo) < len(prompts):
                log(f"{b.name}: {len(prompts) - len(todo)} problems already done, {len(todo)} to go")
            with run.timed(f"generate/{b.name}"):
                _generate(cfg, b, k, todo, prompts, keys, model, tok, grader, samples)
            recs = [samples.records[(b.name, i)] for i in range(len(prompts))]
            problems = [problem_result(r, generated=not cfg.oracle) for r in recs]
            m = summarize(problems, seed=cfg.seed)
            m["ungradable"] = sum(bool(r.get("ungradable")) for r in recs)
            m["source"] = b.source
            results["benchmarks"][b.name] = m
            log(f"{b.name}: pass@1 {m['pass@1']:.3f} ± {m['ci']['pass@1']['se']:.3f}, cons@{k} {m['cons@k']:.3f}"
                + (f", format {m['format_rate']:.3f}" if "format_rate" in m else ""))
    finally:
        samples.close()
    with run.timed("report"):
        atomic_write_text(run.path / RESULTS, json.dumps(results, indent=2) + "\n")
        atomic_write_text(run.path / REPORT, report_markdown(results))
        from r1cli.plots import results_chart

        results_chart(results, run.path / CHART, title=_title(results))
    metrics = {name: {k: v for k, v in m.items() if k in (*TABLE_METRICS, "k", "n_problems", "ungradable")}
               for name, m in results["benchmarks"].items()}
    return {
        "metrics": metrics,
        "json": results,
        "table": {f"{name} {k}": _fmt(m, k) for name, m in results["benchmarks"].items() for k in TABLE_METRICS
                  if k in m},
        "manifest_extra": {"benchmarks": {name: m["source"] for name, m in results["benchmarks"].items()}},
    }


def _check_benchmark_path(spec: str) -> None:
    """A benchmark given as a file path that does not exist is a missing input (exit 3), not an unknown name."""
    p = Path(str(spec)).expanduser()
    looks_like_path = p.suffix.lower() in (".jsonl", ".json", ".parquet", ".csv") or str(spec).startswith(
        (".", "/", "~"))
    if looks_like_path and not p.exists():
        raise InputArtifactError(f"benchmark file {str(spec)!r} does not exist",
                                 hint="check the path, or use a known name such as arith or math500")


def _generate(cfg, bench, k, todo, prompts, keys, model, tok, grader, samples) -> None:
    from r1cli.generation import Sample, generate

    if not todo:
        return
    if cfg.oracle:
        for i in todo:
            row = bench.rows[i]
            samples.write(grader.record(i, row, "", keys[i], [Sample(row["solution"], 0, "stop")]))
        return

    def done(j: int, got: list) -> None:
        i = todo[j]
        samples.write(grader.record(i, bench.rows[i], prompts[i], keys[i], got))

    generate(
        model, tok, [prompts[i] for i in todo], n=k, temperature=cfg.temperature, top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, batch_size=cfg.batch_size, backend=cfg.backend,
        on_prompt_done=done, vllm_options=cfg.vllm_options(),
    )


def _title(results: dict[str, Any]) -> str:
    return "oracle (reference solutions)" if results.get("oracle") else f"r1 eval: {results.get('model')}"


def _fmt(m: dict[str, Any], key: str, compact: bool = False, se: bool = True) -> str:
    """A metric with its standard error (`se`); `compact`: percent with one decimal (a table of many runs fits 80
    columns)."""
    v = m.get(key)
    if v is None:
        return "-"
    if key.endswith("length"):
        return f"{v:.1f}" if not compact else f"{v:.0f}"
    err = (m.get("ci", {}).get(key) or {}).get("se") if se else None
    if compact:
        return f"{100 * v:.1f}" + (f" ±{100 * err:.1f}" if err is not None else "")
    return f"{v:.3f} ± {err:.3f}" if err is not None else f"{v:.3f}"


def report_markdown(results: dict[str, Any]) -> str:
    """report.md: one row per benchmark, metrics with standard errors, then the protocol."""
    lines = [f"# {_title(results)}", ""]
    cols = [c for c in TABLE_METRICS if any(c in m for m in results["benchmarks"].values())
            and not (c == "pass@k" and all(m["k"] == 1 for m in results["benchmarks"].values()))]
    head = ["benchmark", "problems", "k"] + [c for c in cols]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for name, m in results["benchmarks"].items():
        lines.append("| " + " | ".join([name, str(m["n_problems"]), str(m["k"])] + [_fmt(m, c) for c in cols]) + " |")
    lines += ["", "± is one standard error over problems; 95% bootstrap intervals are in results.json.", ""]
    lines.append("Protocol: " + ", ".join(f"{k}={v!r}" for k, v in results["protocol"].items()))
    for name, m in results["benchmarks"].items():
        lines.append(f"- {name}: {m['source']}" + (f" ({m['ungradable']} ungradable gold answers)"
                                                   if m.get("ungradable") else ""))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- compare


def find_results(path: Path) -> Path:
    """results.json of an eval run folder (or of an `eval/` folder inside a stage run)."""
    p = Path(path)
    for cand in (p, p / RESULTS, p / "eval" / RESULTS):
        if cand.is_file() and cand.name == RESULTS:
            return cand
    found = sorted(p.glob(f"*/{RESULTS}")) if p.is_dir() else []
    if len(found) == 1:
        return found[0]
    raise InputArtifactError(
        f"{str(p)!r} holds no eval results ({RESULTS})",
        hint="pass folders written by `r1 eval --output DIR`",
    )


def stage_minutes(eval_run: Path) -> float | None:
    """Wall minutes of the stage that made the evaluated model (its run's manifest), None when unknown."""
    from r1cli.runs import read_manifest

    m = read_manifest(Path(eval_run)) or {}
    spec = next((i.get("spec") for i in m.get("inputs", []) if i.get("name") == "model"), None)
    made = read_manifest(Path(spec)) if spec and Path(spec).is_dir() else None
    total = ((made or {}).get("timings") or {}).get("total")
    return round(total / 60, 1) if isinstance(total, (int, float)) else None


def compare_runs(runs: Sequence[Path], output: Path | None = None, as_json: bool = False) -> dict[str, Any]:
    """Side-by-side table of several eval runs on stdout (or one JSON object), and a PNG chart at `output`."""
    from r1cli.console import emit_json, out

    if not runs:
        raise UsageError("`r1 eval compare` needs at least one run folder")
    loaded: list[tuple[str, dict[str, Any]]] = []
    labels: set[str] = set()
    for r in runs:
        f = find_results(Path(r))
        try:
            res = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise InputArtifactError(f"{str(f)!r} is not valid JSON: {e}") from None
        label = Path(r).name or str(r)
        while label in labels:
            label += "'"
        labels.add(label)
        loaded.append((label, res))
    png = None
    if output is not None:
        from r1cli.plots import compare_chart

        png = Path(output)
        if png.suffix.lower() != ".png":
            png = png / "compare.png"
        compare_chart(loaded, png, title="r1 eval compare")
    minutes = [stage_minutes(Path(r)) for r in runs]
    obj = {"runs": [{"run": str(r), "label": lab, "benchmarks": res.get("benchmarks", {}), "stage_minutes": mins}
                    for r, (lab, res), mins in zip(runs, loaded, minutes, strict=True)],
           "chart": str(png) if png else None}
    if as_json:
        emit_json(obj)
        return obj
    from rich.table import Table

    # one row per run (a pipeline's stages read top to bottom), one column per metric; a benchmark column only
    # when the runs cover several benchmarks
    benches = list(dict.fromkeys(b for _, res in loaded for b in res.get("benchmarks", {})))
    cols: list[tuple[str, str]] = []
    for metric in COMPARE_METRICS:
        present = [res["benchmarks"][b] for _, res in loaded for b in benches if b in res.get("benchmarks", {})]
        if not any(metric in m for m in present):
            continue
        ks = {m.get("k") for m in present}
        if metric == "pass@k" and ks == {1}:
            continue  # the same as pass@1
        cols.append((metric, metric.replace("@k", f"@{ks.pop()}") if len(ks) == 1 and "@k" in metric else metric))
    on = f" on {benches[0]}" if len(benches) == 1 else ""
    t = Table(title=f"r1 eval compare{on} (rates in %, pass@1 ± standard error)", title_justify="left")
    t.add_column("run")
    if len(benches) > 1:
        t.add_column("benchmark")
    for _, shown in cols:
        t.add_column(SHORT.get(shown, shown), justify="right")
    timed = any(x is not None for x in minutes)
    if timed:  # the wall time of the stage that made each model (from its run folder's manifest)
        t.add_column("stage min", justify="right")
    for (lab, res), mins in zip(loaded, minutes, strict=True):
        for b in benches:
            m = res.get("benchmarks", {}).get(b)
            if m is None:
                continue
            t.add_row(lab, *([b] if len(benches) > 1 else []),
                      *[_fmt(m, metric, compact=True, se=metric == "pass@1") for metric, _ in cols],
                      *([f"{mins:.1f}" if mins is not None else "-"] if timed else []))
    out().print(t)
    if png is None:
        log("pass --output FILE.png to also write the chart")
    else:
        log(f"chart: {png}")
    return obj
