"""The GRPO run shared by `r1 rl` and `r1 align`: build `R1GRPOTrainer`, check the set-up (preflight) before the
first update, train with complete-marked checkpoints and `--resume`, save the model, metrics.jsonl and curves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from r1cli.console import log

METRICS = "metrics.jsonl"
CURVES = "curves.png"
PREFLIGHT = "preflight.json"


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

    from r1cli.grpo.preflight import judge, log_report, run_preflight
    from r1cli.runs import atomic_write_text

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
    from r1cli.models import save_trained
    from r1cli.runs import last_complete_checkpoint, marker_callback
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
    save_trained(trainer, tokenizer, run)
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
