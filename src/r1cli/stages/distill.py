"""`r1 distill`: a teacher writes reasoning traces, the student is fine-tuned on them (paper §2.4).

Reads top to bottom:

1. **Prompts** (`input`): a built-in task (`num_prompts` train problems drawn with `seed`) or any dataset with a
   `prompt` column (column mapping as every stage) and, where it has one, a gold `answer`.
2. **Decontamination** (`decontaminate`): prompts that share a word 8-gram with an evaluation set (exact match for
   the built-in test splits, see `r1cli.decontam`) are dropped *before* the teacher sees them — the same rows are
   gone from the training data as when filtering afterwards, and no teacher time is spent on them.
3. **Traces** (`r1cli.teacher`): `num_traces` per prompt from a local checkpoint (r1cli's engine, or vLLM) or an
   OpenAI-compatible endpoint. Each prompt's traces are appended to `<output>/traces.jsonl` (fsync'd) as they
   finish; `--resume` generates only the prompts without a record and refuses records of another protocol.
4. **Selection**, in this order, each rejected trace counted under the first reason: `truncated` (hit
   `max_new_tokens`, unless `keep_truncated`), `incorrect` (a gold exists and the answer is wrong: the task's
   verifier for built-in tasks, math-verify otherwise), `ungradable` (the gold cannot be parsed), `no_gold`
   (only when `keep_ungraded` is off), then R1's readability filters (`r1cli.filters`: format, paragraph,
   code_block, repetition, language_mixing), then `duplicate` (the same text for the same prompt) and
   `over_cap` (beyond `max_per_prompt`). The kept traces are the artifact `<output>/data` (columns `prompt`,
   `completion`, `answer`, `teacher_correct`, ... — an SFT dataset that `r1 coldstart` or `r1 distill
   --train-only` read as it is).
5. **Student**: `model`, fine-tuned on the kept traces by the SFT code of `r1 coldstart` (`r1cli.sft.train_sft`:
   loss on the completion only, full/LoRA/QLoRA, checkpoints, `--resume`), saved to `<output>/model`.

`generate_only` stops after 4 (the run is then a dataset artifact); `train_only` starts at 5 with `input` = a trace
dataset (a distill run, its `data/` folder, or any SFT dataset). Prompts are rendered once, the way `r1 eval`
renders them (`template: auto`), for the teacher and for the student, so the student learns on the text it is
evaluated on.

Departures from the paper: R1 distilled 800k curated samples (600k reasoning from rejection sampling of R1, 200k
non-reasoning) into Qwen/Llama bases with SFT only; here one prompt set and one teacher, with the same filters as
`r1 reject-sample`, and prompts without a gold kept as they pass the readability filters (no generative judge).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from r1cli.console import log
from r1cli.data_io import save_dataset
from r1cli.errors import ConfigError, InputArtifactError, StageError
from r1cli.runs import InputRef, dataset_summary, read_manifest

TRACES = "traces.jsonl"
DEFAULT_TASK_PROMPTS = 1000
REJECT_ORDER = ("truncated", "incorrect", "ungradable", "no_gold")  # then filters.FILTER_NAMES, then these:
REJECT_AFTER = ("duplicate", "over_cap")
OWN_COLUMNS = ("prompt", "completion", "answer", "teacher_correct", "n_tokens", "source_index", "trace_index")


# ---------------------------------------------------------------------------------------------- prompts


def prompt_rows(cfg: Any, run: Any) -> tuple[list[dict[str, Any]], bool]:
    """The teacher's prompt rows {prompt (the question), answer (or None), ...} and whether they are built-in
    task rows."""
    from r1cli.data_io import prompt_rows as rows_of

    return rows_of(cfg.input, run=run, stage="distill", task_n=cfg.num_prompts or DEFAULT_TASK_PROMPTS,
                   dataset_n=cfg.num_prompts, seed=cfg.seed, columns=cfg.columns, task_params=cfg.task_params)


def decontaminate(cfg: Any, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Drop prompts that overlap an eval set; returns (kept rows, summary for the manifest)."""
    if not cfg.decontaminate:
        return rows, {"enabled": False, "dropped": 0}
    from r1cli.decontam import Decontaminator, drop_contaminated

    d = Decontaminator(cfg.decontaminate_against)
    kept, dropped = drop_contaminated(rows, "prompt", decontaminator=d)
    log(f"decontamination: {dropped} of {len(rows)} prompts overlap an eval set and were dropped")
    if not kept:
        raise InputArtifactError(
            f"every one of the {len(rows)} prompts overlaps an eval set ({', '.join(d.names)})",
            hint="use other prompts, or set decontaminate: false if the overlap is intended",
        )
    return kept, {"enabled": True, "dropped": dropped, **d.summary()}


# ---------------------------------------------------------------------------------------------- traces


def protocol_key(cfg: Any, rendered: str, teacher_hash: str | None = None) -> str:
    """What a logged trace record depends on: a resumed run must match it. `teacher_hash` is the local teacher's
    content hash, so a teacher retrained at the same path is not mixed in."""
    blob = json.dumps([cfg.teacher, teacher_hash, cfg.teacher_model_name, cfg.num_traces, cfg.temperature, cfg.top_p,
                       cfg.max_new_tokens, cfg.seed, rendered], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_traces(cfg: Any, run: Any, rows: list[dict[str, Any]], builtin: bool, teacher_hash: str | None = None
                 ) -> list[list[dict[str, Any]]]:
    """Every prompt's traces [{text, n_tokens, finish_reason}] * num_traces, generated or read back from the log."""
    from r1cli.runs import KeyedLog
    from r1cli.teacher import open_teacher

    path = run.path / TRACES
    if not run.resume:
        path.unlink(missing_ok=True)
    with run.timed("load_teacher"):
        teacher = open_teacher(cfg)
    rendered = [teacher.render(r["prompt"], builtin) for r in rows]
    if getattr(teacher, "tok", None) is not None:  # a local teacher: the --dry-run checks, as warnings
        from r1cli.dryrun import sampling_dry_run, warn_failed

        warn_failed(sampling_dry_run("distill", cfg, teacher.tok, rendered[:2], model=cfg.teacher))
    keys = [protocol_key(cfg, p, teacher_hash) for p in rendered]
    logged = KeyedLog(path)
    try:
        todo = logged.todo("traces", keys, "prompt")
        if len(todo) < len(rows):
            log(f"traces: {len(rows) - len(todo)} prompts already done, {len(todo)} to go")

        def done(j: int, traces: list) -> None:
            i = todo[j]
            logged.write({"group": "traces", "index": i, "key": keys[i],
                          "samples": [{"text": t.text, "n_tokens": t.n_tokens, "finish_reason": t.finish_reason}
                                      for t in traces]})

        with run.timed("generate"):
            teacher.generate([rendered[i] for i in todo], cfg.num_traces, done)
        missing = [i for i in range(len(rows)) if ("traces", i) not in logged.records]
        if missing:
            raise StageError(f"the teacher returned no traces for {len(missing)} of {len(rows)} prompts",
                             hint="rerun with --resume to retry them")
        return [logged.records[("traces", i)]["samples"] for i in range(len(rows))]
    finally:
        logged.close()
        teacher.close()


# ---------------------------------------------------------------------------------------------- selection


def _grade(rows: list[dict[str, Any]], traces: list[list[dict[str, Any]]]) -> dict[tuple[int, int], float | None]:
    """Verdicts (1.0 / 0.0 / None = gold unparseable) of every trace of a row with a gold answer."""
    from r1cli.rewards import get_reward

    idx = [(i, j) for i, r in enumerate(rows) if r.get("answer") is not None for j in range(len(traces[i]))]
    if not idx:
        return {}
    names = sorted({k for i, _ in idx for k in rows[i]})
    columns = {k: [rows[i].get(k) for i, _ in idx] for k in names}
    columns.pop("prompt", None)
    verdicts = get_reward("accuracy")([traces[i][j]["text"] for i, j in idx], **columns)
    return dict(zip(idx, verdicts, strict=True))


def select_traces(cfg: Any, rows: list[dict[str, Any]], traces: list[list[dict[str, Any]]]
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The kept trace rows and the counts (see the module docstring for the order of the checks)."""
    from r1cli.filters import FILTER_NAMES, first_failure

    verdicts = _grade(rows, traces)
    rejected = {k: 0 for k in (*REJECT_ORDER, *FILTER_NAMES, *REJECT_AFTER)}
    kept: list[dict[str, Any]] = []
    graded = correct = 0
    prompts_kept = 0
    for i, (row, ts) in enumerate(zip(rows, traces, strict=True)):
        seen: set[str] = set()
        n_kept = 0
        for j, t in enumerate(ts):
            verdict = verdicts.get((i, j))
            if row.get("answer") is not None:
                graded += 1
                correct += verdict == 1.0
            reason = None
            if t["finish_reason"] == "length" and not cfg.keep_truncated:
                reason = "truncated"
            elif row.get("answer") is not None and verdict is None:
                reason = "ungradable"
            elif row.get("answer") is not None and verdict != 1.0:
                reason = "incorrect"
            elif row.get("answer") is None and not cfg.keep_ungraded:
                reason = "no_gold"
            else:
                reason = first_failure(t["text"], cfg.filters)
            if reason is None and t["text"] in seen:
                reason = "duplicate"
            if reason is None and cfg.max_per_prompt is not None and n_kept >= cfg.max_per_prompt:
                reason = "over_cap"
            if reason is not None:
                rejected[reason] += 1
                continue
            seen.add(t["text"])
            n_kept += 1
            kept.append({
                "prompt": row["prompt"],
                "completion": t["text"],
                "answer": row.get("answer"),
                "teacher_correct": None if verdict is None else bool(verdict),
                "n_tokens": int(t["n_tokens"]),
                "source_index": i,
                "trace_index": j,
                **{k: val for k, val in row.items() if k not in OWN_COLUMNS},
            })
        prompts_kept += n_kept > 0
    generated = sum(len(ts) for ts in traces)
    counts = {
        "prompts": len(rows),
        "generated": generated,
        "graded": graded,
        "teacher_accuracy": round(correct / graded, 4) if graded else None,
        "kept": len(kept),
        "kept_share": round(len(kept) / generated, 4) if generated else 0.0,
        "prompts_with_a_kept_trace": prompts_kept,
        "rejected": rejected,
        "mean_kept_tokens": round(sum(r["n_tokens"] for r in kept) / len(kept), 1) if kept else None,
    }
    return kept, counts


# ---------------------------------------------------------------------------------------------- training


def trace_input(cfg: Any, run: Any) -> Any:
    """The trace dataset of `--train-only`: a distill run (its data/, whatever the run's kind), or any dataset."""
    from r1cli.data_io import load_dataset_input

    if not cfg.input:
        raise ConfigError("r1 distill --train-only needs the trace dataset",
                          hint="pass --input RUN (from `r1 distill --generate-only`) or a dataset with prompt/completion")
    p = Path(cfg.input).expanduser()
    man = read_manifest(p) if p.is_dir() else None
    if man is not None and man.get("stage") == "distill" and man.get("status") == "complete" and (p / "data").is_dir():
        ds, _ = load_dataset_input(str(p / "data"), columns=cfg.columns)
        run.add_input(InputRef("input", cfg.input, p / "data", "dataset", man.get("content_hash"), man))
        return ds
    ds, ref = load_dataset_input(cfg.input, columns=cfg.columns)
    run.add_input(ref)
    return ds


def _save_dataset(rows: list[dict[str, Any]], folder: Path) -> Any:
    from datasets import Dataset

    ds = Dataset.from_list(rows)
    if folder.exists():
        shutil.rmtree(folder)
    save_dataset(ds, folder)
    return ds


# ---------------------------------------------------------------------------------------------- stage


def dry_run(cfg: Any, n: int, inputs: Any) -> Any:
    """--train-only: the student's first training sequences; else the teacher's first prompts as its sampler
    receives them (an endpoint teacher renders its own template: the student's rendering is shown instead)."""
    from types import SimpleNamespace

    from r1cli.dryrun import sampling_dry_run
    from r1cli.models import load_tokenizer
    from r1cli.prompts import render_prompt
    from r1cli.sft import sft_dry_run
    from r1cli.teacher import is_endpoint

    if cfg.train_only:
        return sft_dry_run("distill", cfg, trace_input(cfg, inputs), n)
    if not cfg.teacher or not cfg.input:
        raise ConfigError("r1 distill needs a teacher and prompts", hint="set teacher and --input")
    rows, builtin = prompt_rows(cfg, inputs)
    local = not is_endpoint(cfg.teacher)
    spec = cfg.teacher if local else cfg.model
    tok = load_tokenizer(SimpleNamespace(model=spec, trust_remote_code=cfg.trust_remote_code, revision=None))
    prompts = [render_prompt(r["prompt"], builtin_task=builtin, tokenizer=tok, template=cfg.template,
                             instruction=cfg.instruction) for r in rows[:n]]
    d = sampling_dry_run("distill", cfg, tok, prompts, model=spec)
    if not local:
        d.notes.append(f"the endpoint {cfg.teacher} renders prompts with its own chat template; shown: the student's")
    return d


def run(cfg: Any, run: Any) -> dict[str, Any]:
    from r1cli.sft import train_sft
    from r1cli.tasks import available_tasks
    from r1cli.teacher import is_endpoint

    metrics: dict[str, Any] = {"teacher": cfg.teacher, "student": None if cfg.generate_only else cfg.model}
    extra: dict[str, Any] = {}
    data = None
    if cfg.train_only:
        ds = trace_input(cfg, run)
        builtin = "task" in ds.column_names and all(t in available_tasks() for t in ds["task"])
        metrics["teacher"] = ((read_manifest(Path(cfg.input)) or {}).get("config") or {}).get("teacher") \
            if Path(cfg.input).is_dir() else None
    else:
        if not cfg.teacher:
            raise ConfigError("r1 distill needs a teacher",
                              hint="set teacher: a model (run folder, HF folder, hub id) or an endpoint URL")
        if not cfg.input:
            raise ConfigError("r1 distill needs prompts",
                              hint="pass --input TASK (e.g. arith) or a dataset with a prompt column")
        if is_endpoint(cfg.teacher):
            teacher_ref = InputRef("teacher", cfg.teacher, None, "endpoint", None)
        else:
            from r1cli.models import model_ref

            teacher_ref = model_ref(cfg.teacher, name="teacher")
        run.add_input(teacher_ref)
        with run.timed("prompts"):
            rows, builtin = prompt_rows(cfg, run)
            rows, decon = decontaminate(cfg, rows)
        traces = write_traces(cfg, run, rows, builtin, teacher_ref.content_hash)
        with run.timed("select"):
            kept, counts = select_traces(cfg, rows, traces)
        counts["decontaminated_prompts"] = decon["dropped"]
        rej = ", ".join(f"{k} {v}" for k, v in counts["rejected"].items() if v)
        log(f"traces: kept {counts['kept']} of {counts['generated']} (rejected: {rej or 'none'})")
        if not kept:
            raise StageError(f"no trace passed the selection ({rej})",
                             hint=f"look at {run.path / TRACES}; loosen the filters or use a stronger teacher")
        ds = _save_dataset(kept, run.data_dir)
        data = dataset_summary(ds)
        metrics["traces"] = counts
        extra["decontamination"] = decon
        if cfg.generate_only:
            run.kind = "dataset"  # the run is the trace artifact: its manifest hashes data/
            return {"metrics": metrics, "data": data, "manifest_extra": extra}
    with run.timed("train"):
        metrics["train"] = train_sft(cfg, run, ds, resume=run.resume)
    return {"metrics": metrics, "data": data, "manifest_extra": extra}
