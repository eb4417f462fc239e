"""`r1 reject-sample`: rejection sampling (paper §2.3.3) — sample n completions per prompt from a checkpoint, keep
at most m correct and readable ones, write an SFT-ready dataset.

Pipeline per prompt (one sampled completion ends in exactly one bucket, so the manifest's counts add up:
`samples == kept + sum(rejected)`):

1. **truncated** — cut by `max_new_tokens` (when `drop_truncated`);
2. **readability filters** (`r1cli.filters`, first failing one): format, paragraph, code_block, repetition,
   language_mixing — before grading, so that the judge only sees readable completions;
3. **correctness** — built-in task rows by the task's verifier, others by math-verify (the `accuracy` reward):
   **incorrect**; a free-text gold (`r1cli.judge.rule_checkable`, e.g. "Paris") or one math-verify cannot parse goes
   (`judge`, `r1cli.judge`: **incorrect** or **judge_no_verdict**), else **unverifiable**;
4. **duplicate** — the same text (whitespace-normalised) as a completion already kept for the prompt;
5. **over_max_keep** — correct, readable and new, but the prompt already has `max_keep` completions.

Rows without a gold answer are non-reasoning rows: with `passthrough` they are copied as they are when they carry
a `completion` (counted `passthrough`), otherwise dropped (`non_reasoning_dropped`). Before sampling, prompts that
share an 8-gram with the eval sets are dropped (`r1cli.decontam`; counted per eval set).

Output `<output>/data` (HF `save_to_disk`): `prompt` (the question, unrendered), `completion` (the full completion,
a prefilled `<think>` put back), `answer`, `task`, `source` (reject_sample / passthrough), `prompt_index`, `sample`.
`r1 coldstart --input <this run>` reads it as prompt/completion rows.

**Shards and resume.** The prompts (after decontamination, in input order) are cut into shards of `shard_size`.
Each finished shard is one record of `shards.jsonl`, the keyed log (`r1cli.runs.KeyedLog`, as eval's samples and
distill's traces): the shard's protocol key, its output rows and counts, one line flushed and fsync'd before the
next shard starts. `--resume` drops a torn last line, keeps every shard with a record and regenerates the rest; a
record made with other settings is refused.
Sampling is seeded per (seed, prompt, sample) by the generation engine and a shard always decodes the same rows
in the same batch shapes (`batch_size` defaults to the shard's row count, capped at 512, never to a
memory-dependent size), so a resumed run writes exactly the rows an uninterrupted one writes (with the `hf`
backend and rule grading or a greedy local judge; a remote judge or vLLM is as deterministic as that server).

Departure from the paper: R1 also used DeepSeek-V3 as a judge and kept ~600k samples; thresholds and m are ours.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from typing import Any

from r1cli.console import log
from r1cli.data_io import save_dataset
from r1cli.errors import InputArtifactError
from r1cli.runs import KeyedLog, RunDir, dataset_summary

SHARDS = "shards.jsonl"
OUT_COLUMNS = ("prompt", "completion", "answer", "task", "source", "prompt_index", "sample")
REJECT_BUCKETS = ("truncated", "format", "paragraph", "code_block", "repetition", "language_mixing", "incorrect",
                  "unverifiable", "judge_no_verdict", "duplicate", "over_max_keep")
ROW_COUNTS = ("prompts_sampled", "passthrough", "non_reasoning_dropped", "samples", "kept", "judged",
              "prompts_with_kept")
MAX_AUTO_BATCH = 512


# ---------------------------------------------------------------------------------------------- prompts


def load_prompts(cfg: Any, run: RunDir) -> tuple[list[dict[str, Any]], bool, str]:
    """(rows with prompt / answer / task?, whether all rows are built-in task rows, source description)."""
    from r1cli.data_io import prompt_rows, prompt_source
    from r1cli.tasks import available_tasks

    source = prompt_source(cfg, "reject-sample")
    rows, builtin = prompt_rows(source, run=run, stage="reject-sample", task_n=cfg.num_prompts or 1000,
                                dataset_n=cfg.num_prompts, seed=cfg.seed, columns=cfg.columns,
                                task_params=cfg.task_params, task=cfg.task)
    return rows, builtin, (f"task:{source}:train:seed{cfg.seed}" if source in available_tasks() else str(source))


def dry_run(cfg: Any, n: int, inputs: Any) -> Any:
    from r1cli.dryrun import sampling_dry_run
    from r1cli.models import load_tokenizer
    from r1cli.tasks import available_tasks

    rows, _, _ = load_prompts(cfg, inputs)
    tok = load_tokenizer(cfg)
    prompts = [cfg.render(r["prompt"], builtin_task=r.get("task") in available_tasks(), tokenizer=tok)
               for r in rows if has_answer(r)]
    return sampling_dry_run("reject-sample", cfg, tok, prompts[:n])


def has_answer(row: dict[str, Any]) -> bool:
    a = row.get("answer")
    return a is not None and str(a).strip() != ""


# ---------------------------------------------------------------------------------------------- shards


def shard_key(cfg: Any, rows: list[dict[str, Any]], batch_size: int, model_hash: str | None = None) -> str:
    """What a shard's rows depend on (the model's content hash too, when known): a resumed run must match it."""
    from r1cli.config_loader import to_plain

    blob = json.dumps(
        [cfg.model, model_hash, cfg.revision, cfg.n, cfg.max_keep, cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.seed,
         cfg.template, cfg.instruction, cfg.think_prefix, cfg.drop_truncated, cfg.passthrough, cfg.backend,
         batch_size, to_plain(cfg.filters), to_plain(cfg.judge),
         [[r.get("prompt"), str(r.get("answer")), r.get("task")] for r in rows]],
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- one shard


def _norm(text: str) -> str:
    return " ".join(text.split())


class ShardWorker:
    """Samples, filters, grades and selects the completions of one shard of prompts."""

    def __init__(self, cfg: Any, builtin: bool):
        from r1cli.rewards import get_reward

        self.cfg = cfg
        self.builtin = builtin
        self.accuracy = get_reward("accuracy")
        self.model = self.tok = None
        self.judge = None
        self.gen_seconds = 0.0
        self.checked = False

    def load(self, run: RunDir) -> None:
        from r1cli.models import load_model, load_tokenizer, resolve_model

        if self.model is not None:
            return
        with run.timed("load_model"):
            if self.cfg.backend == "vllm":
                self.model, self.tok = resolve_model(self.cfg.model), load_tokenizer(self.cfg)
            else:
                self.model, self.tok = load_model(self.cfg)
        if self.cfg.judge.enabled and self.judge is None:
            from r1cli.judge import Judge

            with run.timed("load_judge"):
                self.judge = Judge(self.cfg.judge, seed=self.cfg.seed)

    def render(self, question: str, builtin_row: bool) -> str:
        return self.cfg.render(question, builtin_task=builtin_row, tokenizer=self.tok)

    def process(self, first_index: int, rows: list[dict[str, Any]], batch_size: int) -> tuple[list[dict], dict]:
        from r1cli.filters import first_failure
        from r1cli.generation import generate
        from r1cli.prompts import as_written, prefilled_think
        from r1cli.tasks import available_tasks

        cfg = self.cfg
        counts: dict[str, Any] = {k: 0 for k in ROW_COUNTS}
        rejected = {k: 0 for k in REJECT_BUCKETS}
        out_by_row: dict[int, list[dict]] = {}
        sampled = [i for i, r in enumerate(rows) if has_answer(r)]
        for i, r in enumerate(rows):
            if has_answer(r):
                continue
            comp = r.get("completion")
            if cfg.passthrough and isinstance(comp, str) and comp.strip():
                counts["passthrough"] += 1
                out_by_row[i] = [self._row(r, comp, first_index + i, -1, "passthrough")]
            else:
                counts["non_reasoning_dropped"] += 1
        counts["prompts_sampled"] = len(sampled)
        if sampled:
            prompts = [self.render(rows[i]["prompt"], rows[i].get("task") in available_tasks()) for i in sampled]
            if not self.checked:  # the --dry-run checks, once, as warnings
                from r1cli.dryrun import sampling_dry_run, warn_failed

                warn_failed(sampling_dry_run("reject-sample", cfg, self.tok, prompts[:2]))
                self.checked = True
            t0 = time.perf_counter()
            got = generate(self.model, self.tok, prompts, n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                           max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, batch_size=batch_size,
                           backend=cfg.backend, progress=False, vllm_options=cfg.vllm_options())
            self.gen_seconds += time.perf_counter() - t0
            # (row, sample j, text) of each completion, then its fate
            items = [(i, j, as_written(prefilled_think(p), s.text), s.finish_reason)
                     for i, p, samples in zip(sampled, prompts, got, strict=True) for j, s in enumerate(samples)]
            counts["samples"] = len(items)
            fate: list[str | None] = [None] * len(items)
            for t, (_i, _j, text, finish) in enumerate(items):
                if cfg.drop_truncated and finish == "length":
                    fate[t] = "truncated"
                else:
                    fate[t] = first_failure(text, cfg.filters)
            todo = [t for t in range(len(items)) if fate[t] is None]
            verdicts = self._grade([items[t] for t in todo], rows)
            need_judge = []
            for t, v in zip(todo, verdicts, strict=True):
                if v is None:
                    need_judge.append(t)
                elif not v:
                    fate[t] = "incorrect"
                else:
                    fate[t] = "correct"
            if need_judge:
                if self.judge is None:
                    for t in need_judge:
                        fate[t] = "unverifiable"
                else:
                    counts["judged"] += len(need_judge)
                    js = self.judge.judge([rows[items[t][0]]["prompt"] for t in need_judge],
                                          [str(rows[items[t][0]]["answer"]) for t in need_judge],
                                          [items[t][2] for t in need_judge])
                    for t, v in zip(need_judge, js, strict=True):
                        fate[t] = "judge_no_verdict" if v is None else ("correct" if v else "incorrect")
            seen: dict[int, set[str]] = {}
            for t, (i, j, text, _f) in enumerate(items):
                if fate[t] != "correct":
                    rejected[fate[t]] += 1  # type: ignore[index]
                    continue
                keep = seen.setdefault(i, set())
                if _norm(text) in keep:
                    rejected["duplicate"] += 1
                elif len(keep) >= cfg.max_keep:
                    rejected["over_max_keep"] += 1
                else:
                    keep.add(_norm(text))
                    out_by_row.setdefault(i, []).append(self._row(rows[i], text, first_index + i, j, "reject_sample"))
                    counts["kept"] += 1
            counts["prompts_with_kept"] = sum(1 for i in sampled if out_by_row.get(i))
        counts["rejected"] = rejected
        out = [r for i in sorted(out_by_row) for r in out_by_row[i]]
        return out, counts

    def _grade(self, items: list[tuple[int, int, str, str]], rows: list[dict[str, Any]]) -> list[bool | None]:
        """Rule verdicts (True / False / None = gold not checkable by rules) of (row, sample, text) items."""
        from r1cli.judge import rule_checkable
        from r1cli.tasks import available_tasks

        out: list[bool | None] = [None] * len(items)
        ruled = [t for t, (i, *_) in enumerate(items)
                 if rows[i].get("task") in available_tasks() or rule_checkable(rows[i]["answer"])]
        if not ruled:
            return out
        keys = sorted({k for t in ruled for k in rows[items[t][0]] if k not in ("prompt", "completion")})
        columns = {k: [rows[items[t][0]].get(k) for t in ruled] for k in keys}
        columns["answer"] = [str(rows[items[t][0]]["answer"]) for t in ruled]
        scores = self.accuracy([items[t][2] for t in ruled], **columns)
        for t, sc in zip(ruled, scores, strict=True):
            out[t] = None if sc is None else sc > 0.5
        return out

    @staticmethod
    def _row(row: dict[str, Any], completion: str, prompt_index: int, sample: int, source: str) -> dict[str, Any]:
        return {"prompt": row["prompt"], "completion": completion,
                "answer": "" if row.get("answer") is None else str(row["answer"]),
                "task": str(row.get("task") or ""), "source": source, "prompt_index": prompt_index, "sample": sample}


# ---------------------------------------------------------------------------------------------- stage


def _add(total: dict[str, Any], counts: dict[str, Any]) -> None:
    for k, v in counts.items():
        if isinstance(v, dict):
            _add(total.setdefault(k, {}), v)
        else:
            total[k] = total.get(k, 0) + v


def run(cfg: Any, run: RunDir) -> dict[str, Any]:
    import datasets

    with run.timed("load_prompts"):
        rows, builtin, source = load_prompts(cfg, run)
    n_input = len(rows)
    log(f"prompts: {n_input} from {source}")
    decon: dict[str, Any] = {"enabled": bool(cfg.decontaminate), "dropped": 0, "by_eval_set": {}}
    if cfg.decontaminate:
        from r1cli.decontam import Decontaminator

        with run.timed("decontaminate"):
            dec = Decontaminator(cfg.eval_sets)
            kept = []
            for r in rows:
                m = dec.match(r["prompt"])
                if m is None:
                    kept.append(r)
                else:
                    decon["by_eval_set"][m] = decon["by_eval_set"].get(m, 0) + 1
            decon["dropped"] = n_input - len(kept)
            decon.update(dec.summary())
            rows = kept
        log(f"decontamination: {decon['dropped']} of {n_input} prompts share an 8-gram with the eval sets"
            + (f" ({decon['by_eval_set']})" if decon["by_eval_set"] else ""))
    if not rows:
        raise InputArtifactError("no prompts left to sample (the input is empty or fully contaminated)",
                                 hint="check the input, or the eval_sets used for decontamination")
    shards = [rows[i : i + cfg.shard_size] for i in range(0, len(rows), cfg.shard_size)]
    log_path = run.path / SHARDS
    if not run.resume:
        log_path.unlink(missing_ok=True)
    worker = ShardWorker(cfg, builtin)
    from r1cli.models import model_ref

    mref = model_ref(cfg.model)
    run.add_input(mref)
    results: list[tuple[list[dict], dict] | None] = [None] * len(shards)
    keys = []
    for shard in shards:
        bs = cfg.batch_size or min(MAX_AUTO_BATCH, max(1, sum(has_answer(r) for r in shard)) * cfg.n)
        keys.append((shard_key(cfg, shard, bs, mref.content_hash), bs))
    logged = KeyedLog(log_path)
    try:
        todo = logged.todo("shards", [key for key, _ in keys], "shard", why="another model, prompt set or settings")
        for k in sorted(set(range(len(shards))) - set(todo)):
            rec = logged.get("shards", k)
            results[k] = (rec["rows"], rec["counts"])
        resumed = len(shards) - len(todo)
        if resumed:
            log(f"resume: {resumed} of {len(shards)} shards already done")
        seconds = 0.0  # sampling + grading + writing shards, model loading excluded
        made = made_samples = made_rows = 0
        with run.timed("shards"):
            for k in todo:
                shard = shards[k]
                if any(has_answer(r) for r in shard):
                    worker.load(run)
                t0 = time.perf_counter()
                out, counts = worker.process(k * cfg.shard_size, shard, keys[k][1])
                logged.write({"group": "shards", "index": k, "key": keys[k][0], "counts": counts, "rows": out})
                seconds += time.perf_counter() - t0
                results[k] = (out, counts)
                made += 1
                made_samples += counts["samples"]
                made_rows += len(out)
                log(f"shard {k + 1}/{len(shards)}: {counts['kept']} kept of {counts['samples']} samples"
                    + (f", {counts['passthrough']} passed through" if counts["passthrough"] else ""))
    finally:
        logged.close()
    total: dict[str, Any] = {}
    out_rows: list[dict] = []
    for got in results:
        assert got is not None
        out_rows.extend(got[0])
        _add(total, got[1])
    with run.timed("write_dataset"):
        features = datasets.Features({c: datasets.Value("int64" if c in ("prompt_index", "sample") else "string")
                                      for c in OUT_COLUMNS})
        ds = (datasets.Dataset.from_list(out_rows, features=features) if out_rows
              else datasets.Dataset.from_dict({c: [] for c in OUT_COLUMNS}, features=features))
        tmp = run.path / ".data.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        save_dataset(ds, tmp, num_shards=1 if not out_rows else None)
        shutil.rmtree(run.data_dir, ignore_errors=True)
        os.replace(tmp, run.data_dir)
    rej = total.get("rejected", {})
    metrics = {
        "prompts": n_input,
        "decontaminated": decon["dropped"],
        **{k: total.get(k, 0) for k in ROW_COUNTS},
        "rejected": {k: rej.get(k, 0) for k in REJECT_BUCKETS},
        "rows": len(out_rows),
        "keep_rate": round(total.get("kept", 0) / total["samples"], 4) if total.get("samples") else 0.0,
        "shards": len(shards),
        "shards_resumed": resumed,
        "samples_per_s": round(made_samples / seconds, 3) if made and seconds > 0 else None,
        "rows_per_s": round(made_rows / seconds, 3) if made and seconds > 0 else None,
        "generation_seconds": round(worker.gen_seconds, 3),
    }
    log(f"kept {metrics['kept']} of {metrics['samples']} samples ({metrics['keep_rate']:.1%}); rejected: "
        + ", ".join(f"{k} {v}" for k, v in metrics["rejected"].items() if v))
    return {
        "metrics": metrics,
        "data": dataset_summary(ds),
        "manifest_extra": {"decontamination": decon, "prompt_source": source},
    }
