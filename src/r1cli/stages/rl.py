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

METRICS = "metrics.jsonl"
CURVES = "curves.png"


def prompt_rows(cfg: Any, run: Any) -> tuple[list[dict[str, Any]], bool]:
    """Rows {prompt (the question), answer, task?, ...} and whether they come from a built-in task: `train_size`
    generated problems of a built-in task, or every row of a dataset with prompt and answer columns."""
    from r1cli.data_io import prompt_rows as rows_of
    from r1cli.data_io import prompt_source

    return rows_of(prompt_source(cfg, "rl"), run=run, stage="RL", task_n=cfg.train_size, seed=cfg.seed,
                   columns=getattr(cfg, "columns", None), task_params=cfg.task_params, require=("prompt", "answer"))


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


def dry_run(cfg: Any, n: int, inputs: Any) -> Any:
    from r1cli.models import load_tokenizer

    rows, builtin = prompt_rows(cfg, inputs)
    tok = load_tokenizer(cfg)
    from r1cli.dryrun import sampling_dry_run

    return sampling_dry_run("rl", cfg, tok, [r["prompt"] for r in rollout_dataset(cfg, rows[:n], builtin, tok)])


def run(cfg: Any, run: Any) -> dict[str, Any]:
    from r1cli.dryrun import sampling_dry_run, warn_failed
    from r1cli.models import load_model, model_ref
    from r1cli.rewards import build_rewards

    rows, builtin = prompt_rows(cfg, run)  # before the policy loads: a bad input fails fast
    funcs, weights = build_rewards(cfg.rewards)
    cfg.reward_weights = weights
    log(f"rewards: {', '.join(f.__name__ for f in funcs)} (weights {weights})")
    run.add_input(model_ref(cfg.model))
    model, tokenizer = load_model(cfg, for_training=True)
    data = rollout_dataset(cfg, rows, builtin, tokenizer)
    warn_failed(sampling_dry_run("rl", cfg, tokenizer, [data[i]["prompt"] for i in range(min(2, len(data)))]))
    return {"metrics": train_grpo(cfg, run, model, tokenizer, data, funcs, title=f"r1 rl: {cfg.model}")}


def train_grpo(cfg: Any, run: Any, model: Any, tokenizer: Any, data: Any, funcs: list[Any], *, title: str,
               curve_keys: list[str] | None = None) -> dict[str, Any]:
    """The GRPO loop shared by `r1 rl` and `r1 align`: `R1GRPOTrainer` with complete-marked checkpoints and
    metrics.jsonl, `--resume` from the newest complete checkpoint, then the model (or adapter) in
    `<run>/model`, the curves PNG, and the metrics summary for the manifest."""
    from r1cli.checkpoints import last_complete_checkpoint, marker_callback
    from r1cli.grpo.trainer import R1GRPOTrainer
    from r1cli.models import save_model
    from r1cli.trainlog import metrics_callback, read_metrics, run_train_loss, training_curves

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
    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        trainer.save_model(str(run.model_dir))  # every rank: gathers sharded weights; rank 0 writes
        if run.is_main:
            tokenizer.save_pretrained(run.model_dir)
    else:
        save_model(trainer.model, tokenizer, run.model_dir)
    names = [f.__name__ for f in funcs]
    keys = ["reward", "completions/mean_length"] + [f"rewards/{n}/mean" for n in names]
    training_curves(run.path / METRICS, run.path / CURVES, title=title, keys=curve_keys)
    logged = [r for r in read_metrics(run.path / METRICS) if "reward" in r]
    first, last = (logged[0], logged[-1]) if logged else ({}, {})
    return {
        "steps": trainer.state.global_step,
        "train_loss": round(run_train_loss(trainer, out, ckpt), 5),
        "first": {k: first[k] for k in keys if k in first},
        "last": {k: last[k] for k in keys if k in last},
        "resumed_from": ckpt,
    }
