"""`r1 data`: write a built-in task dataset (`datasets.save_to_disk` folder in <output>/data).

Rows have `prompt` (the question only: templates are applied by the stage that reads them), `answer` (exact),
`task` and the task's own columns. `cold_start: true` adds `completion`, a readable worked solution in the R1
format (`<think>...</think><answer>...</answer>`), for `r1 coldstart` (R1's cold-start SFT on reasoning traces).
`task: general` writes general prompts (`kind: general`) for `r1 align`, `task: preference` prompt/chosen/rejected
pairs for `r1 reward-model` (both from `r1cli.tasks.preference`).
"""

from __future__ import annotations

from typing import Any

from r1cli.artifacts import RunDir, dataset_summary
from r1cli.configs import DataConfig
from r1cli.console import log


def build_rows(cfg: DataConfig) -> list[dict[str, Any]]:
    """The dataset rows for `cfg` (no files written)."""
    from r1cli.tasks import get_task

    if cfg.task in ("general", "preference"):
        from r1cli.tasks import preference

        gen = preference.general_rows if cfg.task == "general" else preference.preference_rows
        return gen(cfg.split, cfg.n, seed=cfg.seed, **cfg.params)
    task = get_task(cfg.task, **cfg.params)
    rows = task.generate(cfg.split, cfg.n, seed=cfg.seed)
    if cfg.cold_start:
        for row in rows:
            row["completion"] = task.solution(row, style="detailed")
    return rows


def run(cfg: DataConfig, run: RunDir) -> dict[str, Any]:
    from datasets import Dataset

    with run.timed("generate"):
        rows = build_rows(cfg)
    with run.timed("save"):
        ds = Dataset.from_list(rows)
        ds.save_to_disk(str(run.data_dir))
    log(f"r1 data: {len(ds)} {cfg.task} {cfg.split} rows" + (" with worked solutions" if cfg.cold_start else ""))
    return {
        "metrics": {"rows": len(ds), "task": cfg.task, "split": cfg.split},
        "data": dataset_summary(ds),
    }
