"""`r1 rl`: GRPO with rule-based rewards — R1-Zero (paper §2.2) and the reasoning-oriented RL stage (§2.3.2).

Reads top to bottom: load the policy (full, LoRA or QLoRA) -> build the prompt set (a built-in task, or any
dataset with `prompt` and `answer` columns), rendering every prompt with the same function `r1 eval` uses ->
build only the selected rewards -> `R1GRPOTrainer` (TRL's loop with r1cli's loss, advantages, sampler and dynamic
sampling) -> save the model or adapter, `metrics.jsonl` and reward/length curves.

Checkpoints every `save_steps` are marked complete only after TRL wrote them; `--resume` continues from the newest
complete one (step counter, optimizer, scheduler, RNG and data position restored by TRL's Trainer).
"""

from __future__ import annotations

from typing import Any

from r1cli.console import log
from r1cli.errors import InputArtifactError

METRICS = "metrics.jsonl"
CURVES = "curves.png"


def prompt_rows(cfg: Any, run: Any) -> tuple[list[dict[str, Any]], bool]:
    """Rows {prompt (the question), answer, task?, ...} and whether they come from a built-in task."""
    from r1cli.tasks import available_tasks, get_task

    source = cfg.input or cfg.task or "arith"
    if source in available_tasks():
        task = get_task(source, **(cfg.task_params or {}))
        rows = task.generate("train", cfg.train_size, seed=cfg.seed)
        log(f"prompts: {len(rows)} generated `{source}` train problems")
        return rows, True
    from r1cli.data_io import load_dataset_input

    ds, ref = load_dataset_input(source, columns=getattr(cfg, "columns", None))
    run.add_input(ref)
    missing = [c for c in ("prompt", "answer") if c not in ds.column_names]
    if missing:
        raise InputArtifactError(
            f"RL prompts need columns prompt and answer; {source!r} lacks {', '.join(missing)} "
            f"(has: {', '.join(ds.column_names)})",
            hint="write them with `r1 data`, or map your columns",
        )
    rows = ds.to_list()
    builtin = "task" in ds.column_names and all(r.get("task") in available_tasks() for r in rows)
    return rows, builtin


def rollout_dataset(cfg: Any, rows: list[dict[str, Any]], builtin: bool, tokenizer: Any) -> Any:
    """The trainer's dataset: each row with `question` (the raw question, for rewards and logs) and `prompt`
    rendered by `r1cli.prompts.render_prompt`, the function `r1 eval` renders with."""
    from datasets import Dataset

    from r1cli.prompts import render_prompt

    def render(q: str) -> str:
        return render_prompt(
            q,
            builtin_task=builtin,
            tokenizer=tokenizer,
            template=cfg.template,
            instruction=cfg.instruction,
            think_prefix=cfg.think_prefix,
        )

    return Dataset.from_list([{**r, "question": r["prompt"], "prompt": render(r["prompt"])} for r in rows])


def run(cfg: Any, run: Any) -> dict[str, Any]:
    from r1cli.checkpoints import last_complete_checkpoint, marker_callback
    from r1cli.grpo.trainer import R1GRPOTrainer
    from r1cli.models import load_model, model_ref, save_model
    from r1cli.rewards import build_rewards
    from r1cli.trainlog import metrics_callback, read_metrics, training_curves

    run.add_input(model_ref(cfg.model))
    model, tokenizer = load_model(cfg, for_training=True)
    rows, builtin = prompt_rows(cfg, run)
    data = rollout_dataset(cfg, rows, builtin, tokenizer)
    funcs, weights = build_rewards(cfg.rewards)
    cfg.reward_weights = weights
    log(f"rewards: {', '.join(f.__name__ for f in funcs)} (weights {weights})")

    if not run.resume:
        (run.path / METRICS).unlink(missing_ok=True)
    trainer = R1GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=cfg,
        train_dataset=data,
        processing_class=tokenizer,
        callbacks=[marker_callback(), metrics_callback(run.path / METRICS)],
    )
    ckpt = last_complete_checkpoint(cfg.output_dir) if run.resume else None
    if ckpt:
        log(f"resuming from {ckpt}")
    with run.timed("train"):
        out = trainer.train(resume_from_checkpoint=ckpt)
    save_model(trainer.model, tokenizer, run.model_dir)
    training_curves(run.path / METRICS, run.path / CURVES, title=f"r1 rl: {cfg.model}")

    logged = [r for r in read_metrics(run.path / METRICS) if "reward" in r]
    first, last = (logged[0], logged[-1]) if logged else ({}, {})
    names = [f.__name__ for f in funcs]

    def pick(rec: dict[str, Any]) -> dict[str, Any]:
        keys = ["reward", "completions/mean_length"] + [f"rewards/{n}/mean" for n in names]
        return {k: rec[k] for k in keys if k in rec}

    return {
        "metrics": {
            "steps": trainer.state.global_step,
            "train_loss": round(float(out.training_loss), 5),
            "first": pick(first),
            "last": pick(last),
            "resumed_from": ckpt,
        }
    }
