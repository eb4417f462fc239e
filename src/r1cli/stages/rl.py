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

from typing import Any

from r1cli.console import log


def prompt_rows(cfg: Any, run: Any) -> tuple[list[dict[str, Any]], bool]:
    """Rows {prompt (the question), answer, task?, ...} and whether they come from a built-in task: `train_size`
    generated problems of a built-in task, or every row of a dataset with prompt and answer columns."""
    from r1cli.data_io import prompt_rows as rows_of
    from r1cli.data_io import prompt_source

    return rows_of(prompt_source(cfg, "rl"), run=run, stage="RL", task_n=cfg.train_size, seed=cfg.seed,
                   columns=getattr(cfg, "columns", None), task_params=cfg.task_params, require=("prompt", "answer"))


def rollout_dataset(cfg: Any, rows: list[dict[str, Any]], builtin: bool, tokenizer: Any) -> Any:
    """The trainer's dataset: each row with `question` (the raw question, for rewards and logs) and `prompt`
    rendered by the config's `render` (`r1cli.prompts.render_prompt`), as `r1 eval` renders."""
    from datasets import Dataset

    return Dataset.from_list([
        {**r, "question": r["prompt"], "prompt": cfg.render(r["prompt"], builtin_task=builtin, tokenizer=tokenizer)}
        for r in rows
    ])


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
    from r1cli.grpo.loop import train_grpo

    return train_grpo(cfg, run, model, tokenizer, data, funcs, title=f"r1 rl: {cfg.model}", heldout=heldout)


def preflight(cfg: Any, inputs: Any) -> dict[str, Any]:
    """`r1 rl --preflight`: the preflight report of this config (nothing trained, nothing written)."""
    cfg.eval_every = 0  # no held-out set is needed to sample
    from r1cli.grpo.loop import preflight_only

    return preflight_only(cfg, *_setup(cfg, inputs)[:4])
