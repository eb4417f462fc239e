"""`r1 rl`: GRPO with rule-based rewards — R1-Zero (paper §2.2) and the reasoning-oriented RL stage (§2.3.2).

Reads top to bottom: load the policy (full, LoRA or QLoRA) -> build the prompt set (a built-in task, or any
dataset with `prompt` and `answer` columns), rendering every prompt with the same function `r1 eval` uses ->
build only the selected rewards -> `R1GRPOTrainer` (TRL's loop with r1cli's loss, advantages, sampler and dynamic
sampling) -> save the model or adapter, `metrics.jsonl` and reward/length curves.

Before the first update, a preflight check (`r1cli.grpo.preflight`) samples G completions for `preflight_prompts`
training prompts with the built trainer and stops the run when no group has reward variance (`preflight.json`, the
manifest's `preflight` block); `r1 rl --preflight` runs only that check. `eval_every` adds the held-out task eval
(`r1cli.grpo.heldout`).

Checkpoints every `save_steps` are marked complete only after TRL wrote them; `--resume` continues from the newest
complete one (step counter, optimizer, scheduler, RNG and data position restored by TRL's Trainer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from r1cli.console import log

METRICS = "metrics.jsonl"
CURVES = "curves.png"
PREFLIGHT = "preflight.json"


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


def _setup(cfg: Any, run: Any) -> tuple[Any, Any, Any, list[Any], Any]:
    """Rewards, prompts, held-out set (each fails fast, before the policy loads), then the policy and the rollout
    dataset."""
    from r1cli.console import held_logs
    from r1cli.dryrun import sampling_dry_run, warn_failed
    from r1cli.models import load_model, model_ref
    from r1cli.rewards import build_rewards

    with held_logs():  # a bad input or model below leaves its error line alone on stderr
        funcs, weights = build_rewards(cfg.rewards)  # rewards, then prompts, then the policy: cheap checks first
        cfg.reward_weights = weights
        log(f"rewards: {', '.join(f.__name__ for f in funcs)} (weights {weights})")
        rows, builtin = prompt_rows(cfg, run)
        heldout = None
        if cfg.eval_every:
            from r1cli.grpo.heldout import load_heldout

            heldout = load_heldout(cfg, "rl", [r["prompt"] for r in rows])
        run.add_input(model_ref(cfg.model))
        model, tokenizer = load_model(cfg, for_training=True)
    data = rollout_dataset(cfg, rows, builtin, tokenizer)
    warn_failed(sampling_dry_run("rl", cfg, tokenizer, [data[i]["prompt"] for i in range(min(2, len(data)))]))
    return model, tokenizer, data, funcs, heldout


def run(cfg: Any, run: Any) -> dict[str, Any]:
    model, tokenizer, data, funcs, heldout = _setup(cfg, run)
    return train_grpo(cfg, run, model, tokenizer, data, funcs, title=f"r1 rl: {cfg.model}", heldout=heldout)


def preflight(cfg: Any, inputs: Any) -> dict[str, Any]:
    """`r1 rl --preflight`: the preflight report of this config (nothing trained, nothing written)."""
    cfg.eval_every = 0  # no held-out set is needed to sample
    return preflight_only(cfg, *_setup(cfg, inputs)[:4])


def preflight_only(cfg: Any, model: Any, tokenizer: Any, data: Any, funcs: list[Any]) -> dict[str, Any]:
    """The preflight report of a trainer built as `train_grpo` builds it (`--preflight` of rl and align)."""
    import tempfile

    from r1cli.errors import UsageError
    from r1cli.grpo.preflight import run_preflight

    if cfg.preflight_prompts < 1:
        raise UsageError("--preflight with preflight_prompts 0 has nothing to sample", hint="--set preflight_prompts=32")
    with tempfile.TemporaryDirectory(prefix="r1-preflight-") as tmp:
        cfg.output_dir = tmp  # TRL's Trainer may create its output folder; the check writes nothing that stays
        trainer = build_trainer(cfg, model, tokenizer, data, funcs)
        return run_preflight(trainer, cfg.preflight_prompts, seed=cfg.seed)


def build_trainer(cfg: Any, model: Any, tokenizer: Any, data: Any, funcs: list[Any], callbacks: list[Any] | None = None):
    from r1cli.grpo.trainer import R1GRPOTrainer

    return R1GRPOTrainer(
        model=model, reward_funcs=funcs, args=cfg, train_dataset=data, processing_class=tokenizer,
        callbacks=callbacks or [],
    )


def _preflight_before_training(cfg: Any, run: Any, trainer: Any, resumed: bool) -> dict[str, Any] | None:
    """The preflight report of a real run (written to preflight.json), or the earlier one when resuming (the policy
    is the checkpoint's by then, not the one the check is about)."""
    import json

    from r1cli.artifacts import atomic_write_text
    from r1cli.grpo.preflight import judge, log_report, run_preflight

    path = run.path / PREFLIGHT
    if resumed:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if not cfg.preflight_prompts:
        return None
    if trainer.accelerator.num_processes > 1:
        log("preflight: skipped under a multi-process launch (run `r1 rl --preflight` on one process)")
        return None
    with run.timed("preflight"):
        report = run_preflight(trainer, cfg.preflight_prompts, seed=cfg.seed)
    if run.is_main:
        atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    log_report(report)
    judge(report, cfg.preflight_max_zero_std)
    return report


def train_grpo(cfg: Any, run: Any, model: Any, tokenizer: Any, data: Any, funcs: list[Any], *, title: str,
               curve_keys: list[str] | None = None, heldout: Any = None, stage: str = "rl") -> dict[str, Any]:
    """The GRPO loop shared by `r1 rl` and `r1 align`: `R1GRPOTrainer` with complete-marked checkpoints and
    metrics.jsonl, the preflight check, the held-out eval (`eval_every`; `heldout` = its loaded set, else loaded
    here), `--resume` from the newest complete checkpoint, then the model (or adapter) in `<run>/model` and the
    curves PNG. Returns the stage result: {metrics, manifest_extra: {preflight, heldout}}."""
    from r1cli.checkpoints import last_complete_checkpoint, marker_callback
    from r1cli.models import save_model
    from r1cli.trainlog import metrics_callback, read_metrics, run_train_loss, training_curves

    if not run.resume:
        (run.path / METRICS).unlink(missing_ok=True)
    callbacks = [marker_callback(), metrics_callback(run.path / METRICS)]
    evals = None
    if cfg.eval_every:
        from r1cli.grpo.heldout import HeldoutEval, load_heldout

        if heldout is None:
            questions = [str(q) for q in data["question"]] if "question" in data.column_names else None
            heldout = load_heldout(cfg, stage, questions)
        evals = HeldoutEval(heldout, tokenizer, cfg)
        callbacks.append(evals)
    trainer = build_trainer(cfg, model, tokenizer, data, funcs, callbacks)
    if evals is not None:
        evals.bind(trainer)
    ckpt = last_complete_checkpoint(cfg.output_dir) if run.resume else None
    if ckpt:
        log(f"resuming from {ckpt}")
        if evals is not None:
            evals.restore(read_metrics(run.path / METRICS), int(Path(ckpt).name.rsplit("-", 1)[-1]))
    report = _preflight_before_training(cfg, run, trainer, resumed=bool(ckpt))
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
    if evals is not None:
        curve_keys = (curve_keys or ["reward", "rewards/accuracy/mean", "completions/mean_length"]) + [
            "heldout/pass@1"]
    training_curves(run.path / METRICS, run.path / CURVES, title=title, keys=curve_keys)
    logged = [r for r in read_metrics(run.path / METRICS) if "reward" in r]
    first, last = (logged[0], logged[-1]) if logged else ({}, {})
    metrics = {
        "steps": trainer.state.global_step,
        "train_loss": round(run_train_loss(trainer, out, ckpt), 5),
        "first": {k: first[k] for k in keys if k in first},
        "last": {k: last[k] for k in keys if k in last},
        "resumed_from": ckpt,
    }
    extra: dict[str, Any] = {}
    if report is not None:
        extra["preflight"] = report
    if evals is not None and evals.evals:
        extra["heldout"] = evals.summary(cfg.output_dir, run.model_dir, trainer.state.global_step)
        best = extra["heldout"]
        metrics["heldout"] = {"best_step": best["best_step"], "best_pass@1": best["best_pass@1"],
                              "best_checkpoint": best["best_checkpoint"], "last_pass@1": evals.evals[-1]["pass@1"]}
    return {"metrics": metrics, "manifest_extra": extra}
