"""`r1 data`: write a built-in task dataset (`datasets.save_to_disk` folder in <output>/data).

Rows have `prompt` (the question only: templates are applied by the stage that reads them), `answer` (exact),
`task` and the task's own columns. `cold_start: true` adds `completion`, a readable worked solution in the R1
format (`<think>...</think><answer>...</answer>`), for `r1 coldstart` (R1's cold-start SFT on reasoning traces).
`task: general` writes general prompts (`kind: general`) for `r1 align`, `task: preference` prompt/chosen/rejected
pairs for `r1 reward-model` (both from `r1cli.tasks.preference`).

`--from SOURCE` writes real prompts for a real model instead: `gsm8k` (GSM8K train: the shared folder's file, else
the hub's `openai/gsm8k`), `math` (MATH train from the hub, `EleutherAI/hendrycks_math`, answers from the last
`\\boxed{}` of each solution), or any JSONL/Parquet file, dataset folder or hub id (train split). Rows are
normalised like benchmarks (`prompt`, `answer` without thousands separators, `solution` when there is one),
rows without a gradable answer are dropped, and prompts that overlap an eval set (exact, or a shared 8-gram) are
dropped; the counts go to the manifest. `rl`, `reject-sample`, `align` and `distill` take the result as `--input`.
"""

from __future__ import annotations

from typing import Any

from r1cli.console import log
from r1cli.data_io import save_dataset
from r1cli.runs import RunDir, dataset_summary
from r1cli.stages.data_config import DataConfig

DEFAULT_N = 1000  # rows of a built-in task when --n is not given

# name -> (file in the shared data folder, hub id, hub config, prompt/answer/solution columns)
TRAIN_SOURCES: dict[str, tuple[str | None, str, str | None, dict[str, str]]] = {
    "gsm8k": ("gsm8k_train.jsonl", "openai/gsm8k", "main", {"prompt": "question", "answer": "answer"}),
    "math": (None, "EleutherAI/hendrycks_math", None, {"prompt": "problem", "solution": "solution"}),
}


def source_rows(cfg: DataConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Normalised, decontaminated train rows of `cfg.source`, and the counts for the manifest."""
    from pathlib import Path

    from r1cli.decontam import Decontaminator, drop_contaminated
    from r1cli.errors import InputArtifactError
    from r1cli.prompts import last_boxed
    from r1cli.tasks.benchmarks import (
        ANSWER_NAMES,
        _load_folder,
        _load_hub,
        normalise,
        read_rows,
        shared_data_dir,
    )

    name = cfg.source.strip().lower()
    mapping = dict(cfg.columns)
    if name in TRAIN_SOURCES:
        file, hub, config, cols = TRAIN_SOURCES[name]
        mapping = {**cols, **mapping}
        data = shared_data_dir()
        if file and data is not None and (data / file).is_file():
            raw, where = read_rows(data / file), str(data / file)
        else:
            raw, where = _load_hub(hub, config, "train"), f"{hub}:train"
    else:
        p = Path(cfg.source).expanduser()
        if p.is_dir():
            raw, where = _load_folder(p), str(p)
        elif p.is_file():
            raw, where = read_rows(p), str(p)
        else:
            hub, _, config = cfg.source.partition(":")
            raw, where = _load_hub(hub, config or None, "train"), f"{cfg.source}:train"
    if "answer" not in mapping and mapping.get("solution") and raw and mapping["solution"] in raw[0]:
        for r in raw:  # MATH-style: the gold answer is the last box of the reference solution
            r.setdefault("answer", last_boxed(str(r[mapping["solution"]])))
        mapping["answer"] = "answer"
    total = len(raw)
    acol = mapping.get("answer") or next((c for c in ANSWER_NAMES if raw and c in raw[0]), None)
    raw = [r for r in raw if acol is None or str(r.get(acol) if r.get(acol) is not None else "").strip()]
    no_answer = total - len(raw)
    if not raw:
        raise InputArtifactError(f"{cfg.source!r}: no row has an answer ({total} read)",
                                 hint="map the answer column: --set columns='{prompt: question, answer: final}'")
    rows = normalise(raw, mapping, what=cfg.source)
    d = Decontaminator(cfg.decontaminate_against)
    rows, dropped = drop_contaminated(rows, "prompt", decontaminator=d)
    if not rows:
        raise InputArtifactError(f"{cfg.source!r}: no row left after dropping {no_answer} without an answer and "
                                 f"{dropped} overlapping an eval set")
    if cfg.n:
        rows = rows[: cfg.n]
    log(f"r1 data --from {cfg.source}: {total} rows read from {where}; {no_answer} without an answer and {dropped} "
        f"overlapping an eval set dropped; {len(rows)} written")
    counts = {"source": where, "read": total, "no_answer": no_answer, "decontaminated": dropped,
              "rows": len(rows), "decontamination": d.summary()}
    return rows, counts


def build_rows(cfg: DataConfig) -> list[dict[str, Any]]:
    """The dataset rows for `cfg` (no files written)."""
    from r1cli.sft import summary_text
    from r1cli.tasks import get_task

    if cfg.task in ("general", "preference"):
        from r1cli.tasks import preference

        gen = preference.general_rows if cfg.task == "general" else preference.preference_rows
        return gen(cfg.split, cfg.n or DEFAULT_N, seed=cfg.seed, **cfg.params)
    task = get_task(cfg.task, **cfg.params)
    rows = task.generate(cfg.split, cfg.n or DEFAULT_N, seed=cfg.seed)
    if cfg.cold_start:
        for row in rows:
            row["completion"] = task.solution(row, style="detailed")
            if cfg.answer_format == "boxed":
                think, sep, rest = row["completion"].partition("</think>")
                answer = rest.split("<answer>", 1)[-1].split("</answer>", 1)[0].strip()
                row["completion"] = f"{think}{sep}\n" + summary_text(answer, "boxed")
    return rows


def run(cfg: DataConfig, run: RunDir) -> dict[str, Any]:
    from datasets import Dataset

    if cfg.source:
        with run.timed("load"):
            rows, counts = source_rows(cfg)
        ds = Dataset.from_list(rows)
        save_dataset(ds, run.data_dir)
        return {"metrics": {**counts, "split": "train"}, "data": dataset_summary(ds)}
    with run.timed("generate"):
        rows = build_rows(cfg)
    with run.timed("save"):
        ds = Dataset.from_list(rows)
        save_dataset(ds, run.data_dir)
    log(f"r1 data: {len(ds)} {cfg.task} {cfg.split} rows" + (" with worked solutions" if cfg.cold_start else ""))
    return {
        "metrics": {"rows": len(ds), "task": cfg.task, "split": cfg.split},
        "data": dataset_summary(ds),
    }
