"""SFT shared by `coldstart` and `distill`: shape any supported dataset into prompt/completion text, then train
with TRL's `SFTTrainer` (loss on the completion only, EOS appended by TRL), with LoRA/QLoRA from `ModelArgs`,
checkpoints that are never resumed half-written, and the model or adapter saved to `<output>/model`.

Accepted row shapes (after the column mapping):
- `messages`: a chat; the last assistant turn is the completion, everything before it the prompt.
- `prompt` + `completion`: the prompt is rendered with the configured template, the completion used as is.
- `prompt` + `reasoning` + `answer`: R1's cold-start shape, `<think>\\n{reasoning}\\n</think>\\n` + a summary with
  the answer (`<answer>` tags or `\\boxed{}`, per `answer_format`).
"""

from __future__ import annotations

from typing import Any

from r1cli.errors import InputArtifactError
from r1cli.prompts import build_prompt


def summary_text(answer: str, answer_format: str) -> str:
    if answer_format == "boxed":
        return f"The answer is \\boxed{{{answer}}}."
    return f"<answer>\n{answer}\n</answer>"


def to_prompt_completion(ds: Any, tokenizer: Any, cfg: Any) -> Any:
    """Map a dataset to `prompt`/`completion` text columns (see the module docstring for the shapes)."""
    cols = set(ds.column_names)
    template, instruction = cfg.template, cfg.instruction

    if "messages" in cols:

        def fn(row):
            msgs = row["messages"]
            if not msgs or msgs[-1].get("role") != "assistant":
                return {"prompt": None, "completion": None}
            prompt = tokenizer.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
            return {"prompt": prompt, "completion": msgs[-1]["content"]}

    elif {"prompt", "completion"} <= cols:

        def fn(row):
            return {
                "prompt": build_prompt(row["prompt"], template, tokenizer, instruction=instruction),
                "completion": row["completion"],
            }

    elif {"prompt", "reasoning", "answer"} <= cols:

        def fn(row):
            completion = f"<think>\n{row['reasoning'].strip()}\n</think>\n" + summary_text(
                str(row["answer"]), cfg.answer_format
            )
            return {
                "prompt": build_prompt(row["prompt"], template, tokenizer, instruction=instruction),
                "completion": completion,
            }

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


def train_sft(cfg: Any, run: Any, train_ds: Any, *, resume: bool) -> dict[str, Any]:
    """Fine-tune `cfg.model` on prompt/completion rows; save to `run.model_dir`; return metrics."""
    import time

    from trl import SFTTrainer

    from r1cli.checkpoints import last_complete_checkpoint, marker_callback
    from r1cli.console import log
    from r1cli.models import load_model, merge_adapter, model_ref, save_model

    run.add_input(model_ref(cfg.model))
    model, tokenizer = load_model(cfg, for_training=True)
    data = to_prompt_completion(train_ds, tokenizer, cfg)
    if cfg.max_samples:
        data = data.select(range(min(cfg.max_samples, len(data))))
    log(f"SFT on {len(data)} rows, model {cfg.model}")
    trainer = SFTTrainer(
        model=model, args=cfg, train_dataset=data, processing_class=tokenizer, callbacks=[marker_callback()]
    )
    ckpt = last_complete_checkpoint(cfg.output_dir) if resume else None
    if ckpt:
        log(f"resuming from {ckpt}")
    t = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=ckpt)
    seconds = time.perf_counter() - t
    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        trainer.save_model(str(run.model_dir))  # every rank: gathers sharded weights; rank 0 writes
        if run.is_main:
            tokenizer.save_pretrained(run.model_dir)
    else:
        save_model(trainer.model, tokenizer, run.model_dir)
    if getattr(cfg, "use_peft", False) and cfg.save_merged and run.is_main:
        merge_adapter(run.model_dir, run.path / "merged")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "train_loss": round(float(out.training_loss), 4),
        "first_logged_loss": losses[0] if losses else None,
        "last_logged_loss": losses[-1] if losses else None,
        "steps": trainer.state.global_step,
        "rows": len(data),
        "train_seconds": round(seconds, 1),
        "resumed_from": ckpt,
    }
