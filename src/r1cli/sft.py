"""SFT shared by `coldstart` and `distill`: shape any supported dataset into prompt/completion rows, tokenize them
once through `r1cli.prompts` (the prompt ids every sampling stage feeds, then the completion and EOS; loss on the
completion + EOS only), then train with TRL's `SFTTrainer`, with LoRA/QLoRA from `ModelArgs`, checkpoints that are
never resumed half-written, and the model or adapter saved to `<output>/model`.

Accepted row shapes (after the column mapping):
- `messages`: a chat; the last assistant turn is the completion (the only turn trained), everything before it the
  prompt, rendered with the chat template's generation prompt.
- `prompt` + `completion`: the prompt is rendered as the sampling stages render it, the completion used as is.
- `prompt` + `reasoning` + `answer`: R1's cold-start shape, `<think>\\n{reasoning}\\n</think>\\n` + a summary with
  the answer (`<answer>` tags or `\\boxed{}`, per `answer_format`).
A template that pre-fills `<think>` already wrote the tag: the completion starts after it.
"""

from __future__ import annotations

from typing import Any

from r1cli.errors import InputArtifactError


def summary_text(answer: str, answer_format: str) -> str:
    if answer_format == "boxed":
        return f"The answer is \\boxed{{{answer}}}."
    return f"<answer>\n{answer}\n</answer>"


def to_prompt_completion(ds: Any, tokenizer: Any, cfg: Any) -> Any:
    """Map a dataset to `prompt` (rendered text) / `completion` (what the model writes after it) columns.

    Prompts are rendered by `r1cli.prompts.render_prompt`, the function every sampling stage uses (built-in task
    rows, those with a `task` column naming one, get no instruction, as in `r1 eval`). A completion stored as the
    model wrote it (a template-pre-filled `<think>` put back, as reject-sample and distill store it) loses that
    pre-fill here; the cold-start shape writes `<think>` only when the template does not.
    """
    from r1cli.prompts import prefilled_think, render_prompt, strip_prefill
    from r1cli.tasks import available_tasks

    cols = set(ds.column_names)
    tasks = set(available_tasks())

    def render(row: dict[str, Any]) -> str:
        return render_prompt(row["prompt"], builtin_task=row.get("task") in tasks, tokenizer=tokenizer,
                             template=cfg.template, instruction=cfg.instruction,
                             think_prefix=getattr(cfg, "think_prefix", False))

    if "messages" in cols:

        def fn(row):
            msgs = row["messages"]
            if not msgs or msgs[-1].get("role") != "assistant":
                return {"prompt": None, "completion": None}
            prompt = tokenizer.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
            return {"prompt": prompt, "completion": strip_prefill(prefilled_think(prompt), msgs[-1]["content"])}

    elif {"prompt", "completion"} <= cols:

        def fn(row):
            prompt = render(row)
            return {"prompt": prompt, "completion": strip_prefill(prefilled_think(prompt), row["completion"])}

    elif {"prompt", "reasoning", "answer"} <= cols:

        def fn(row):
            prompt = render(row)
            completion = f"<think>\n{row['reasoning'].strip()}\n</think>\n" + summary_text(
                str(row["answer"]), cfg.answer_format
            )
            return {"prompt": prompt, "completion": strip_prefill(prefilled_think(prompt), completion)}

    else:
        raise InputArtifactError(
            f"SFT data needs columns messages, or prompt+completion, or prompt+reasoning+answer "
            f"(has: {', '.join(sorted(cols))})",
            hint="map your columns in the recipe, e.g. columns: {prompt: question, completion: response}",
        )
    out = ds.map(fn, remove_columns=ds.column_names)
    out = out.filter(lambda r: r["prompt"] is not None and bool(r["completion"]))
    if len(out) == 0:
        raise InputArtifactError("SFT data has no usable rows (every row lacked a prompt or a completion)")
    return out


def tokenize_sft(data: Any, tokenizer: Any, max_length: int | None) -> tuple[Any, int]:
    """prompt/completion rows -> + `input_ids` (the prompt ids every sampling stage feeds, then the completion and
    EOS) and `labels` (-100 on the prompt), built once here so TRL adds no second BOS; rows longer than
    `max_length` are dropped (cutting them would train on reasoning without its answer and EOS). Returns the
    dataset and the number of rows dropped."""
    from r1cli.prompts import sft_tokens

    def fn(row):
        t = sft_tokens(tokenizer, row["prompt"], row["completion"])
        labels = [tok if m else -100 for tok, m in zip(t["input_ids"], t["completion_mask"], strict=True)]
        return {"input_ids": t["input_ids"], "labels": labels}

    out = data.map(fn)
    n = len(out)
    if max_length:
        out = out.filter(lambda r: len(r["input_ids"]) <= max_length)
    dropped = n - len(out)
    if len(out) == 0:
        raise InputArtifactError(
            f"every SFT row is longer than max_length={max_length} tokens",
            hint="raise max_length (--set max_length=N)",
        )
    return out, dropped


def sft_dry_run(stage: str, cfg: Any, ds: Any, n: int) -> Any:
    """The first `n` training sequences of an SFT stage, as `tokenize_sft` builds them (see `r1cli.dryrun`)."""
    from r1cli.data_io import quiet_datasets
    from r1cli.dryrun import DryRun, sft_example
    from r1cli.models import load_tokenizer

    tok = load_tokenizer(cfg)
    with quiet_datasets():  # stdout and stderr show the examples, not datasets' progress bars
        data = to_prompt_completion(ds.select(range(min(n, len(ds)))), tok, cfg)
    return DryRun(stage, "sft", tok, [sft_example(tok, r["prompt"], r["completion"]) for r in data],
                  max_length=cfg.max_length)


def train_sft(cfg: Any, run: Any, train_ds: Any, *, resume: bool) -> dict[str, Any]:
    """Fine-tune `cfg.model` on prompt/completion rows; save to `run.model_dir`; return metrics."""
    import time

    from trl import SFTTrainer

    from r1cli.console import held_logs, log
    from r1cli.data_io import quiet_datasets
    from r1cli.models import check_model, load_model, load_tokenizer, merge_adapter, model_ref, save_trained
    from r1cli.runs import last_complete_checkpoint, marker_callback
    from r1cli.trainlog import run_train_loss

    with held_logs():  # a bad dataset or model leaves its error line alone on stderr
        run.add_input(model_ref(cfg.model))
        check_model(cfg)
        with quiet_datasets():  # the data's shape before minutes of weights
            data = to_prompt_completion(train_ds, load_tokenizer(cfg), cfg)
        model, tokenizer = load_model(cfg, for_training=True)
    if cfg.max_samples:
        data = data.select(range(min(cfg.max_samples, len(data))))
    from r1cli.dryrun import DryRun, sft_example, warn_failed

    head = data.select(range(min(2, len(data))))
    warn_failed(DryRun("sft", "sft", tokenizer, [sft_example(tokenizer, r["prompt"], r["completion"]) for r in head],
                       max_length=cfg.max_length))
    with quiet_datasets():  # its map/filter bars; r1's own lines give the counts
        data, too_long = tokenize_sft(data, tokenizer, cfg.max_length)
    if too_long:
        log(f"[yellow]warning[/]: {too_long} rows longer than max_length={cfg.max_length} tokens left out "
            "(raise max_length to keep them)")
    log(f"SFT on {len(data)} rows, model {cfg.model}")
    with quiet_datasets():  # TRL's own truncation and masking passes over the already tokenized rows
        trainer = SFTTrainer(
            model=model, args=cfg, train_dataset=data, processing_class=tokenizer, callbacks=[marker_callback()]
        )
    ckpt = last_complete_checkpoint(cfg.output_dir) if resume else None
    if ckpt:
        log(f"resuming from {ckpt}")
    t = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=ckpt)
    seconds = time.perf_counter() - t
    save_trained(trainer, tokenizer, run)
    if getattr(cfg, "use_peft", False) and cfg.save_merged and run.is_main:
        merge_adapter(run.model_dir, run.path / "merged")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "train_loss": round(run_train_loss(trainer, out, ckpt), 4),
        "first_logged_loss": losses[0] if losses else None,
        "last_logged_loss": losses[-1] if losses else None,
        "steps": trainer.state.global_step,
        "rows": len(data),
        "rows_too_long": too_long,
        "train_seconds": round(seconds, 1),
        "resumed_from": ckpt,
    }
