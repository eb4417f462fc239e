"""The training-side stage commands (coldstart, rl, reject-sample, align, distill).

They share one option set: `--model` (policy/student checkpoint: preset, r1cli run, HF folder or hub id) and
`--input` (the dataset), plus the common options.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Optional

import typer

from r1cli.commands.common import (
    DebugOpt,
    DryRunOpt,
    DryRunRowsOpt,
    InputOpt,
    JsonOpt,
    OutputOpt,
    OverwriteOpt,
    PreflightOpt,
    PrintConfigOpt,
    RecipeOpt,
    ResumeOpt,
    SeedOpt,
    SetOpt,
    run_stage,
)

ModelOpt = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="Model: a preset (tiny), an r1cli run, a HF folder or a hub id."),
]

PREFLIGHT_STAGES = ("rl", "align")

HELP = {
    "coldstart": "SFT on long, readable chain-of-thought examples (R1's cold start).",
    "rl": "GRPO with rule-based rewards (R1-Zero / reasoning-oriented RL).",
    "reject-sample": "Sample n answers per prompt, keep the correct and readable ones, write an SFT dataset.",
    "align": "RL for all scenarios: rule rewards on reasoning rows, reward models on general rows.",
    "distill": "A teacher writes reasoning traces; a student is fine-tuned on them.",
    "reward-model": "Train a preference reward model (TRL RewardTrainer) on prompt/chosen/rejected pairs.",
    "merge": "Merge a LoRA/QLoRA adapter (--model RUN) into its base: a plain full model in <output>/model.",
}


def _make(stage: str):
    def command(
        model: ModelOpt = None,
        input: InputOpt = None,
        recipe: RecipeOpt = None,
        set_: SetOpt = None,
        output: OutputOpt = None,
        seed: SeedOpt = None,
        resume: ResumeOpt = False,
        overwrite: OverwriteOpt = False,
        debug: DebugOpt = False,
        json_: JsonOpt = False,
        print_config: PrintConfigOpt = False,
        dry_run: DryRunOpt = False,
        dry_run_rows: DryRunRowsOpt = 2,
        preflight: PreflightOpt = False,
    ) -> None:
        run_stage(
            stage,
            recipe=recipe,
            sets=set_,
            overrides={"model": model, "input": input, "output": output and str(output), "seed": seed},
            resume=resume,
            overwrite=overwrite,
            debug=debug,
            as_json=json_,
            print_config=print_config,
            dry_run=dry_run,
            dry_run_rows=dry_run_rows,
            preflight=preflight,
        )

    command.__name__ = stage.replace("-", "_")
    command.__doc__ = HELP[stage]
    if stage not in PREFLIGHT_STAGES:  # --preflight is shown only where a GRPO loop runs
        sig = inspect.signature(command, eval_str=True)  # the Annotated options, not their names
        command.__signature__ = sig.replace(parameters=[p for p in sig.parameters.values() if p.name != "preflight"])
    return command


def distill(
    model: ModelOpt = None,
    teacher: Annotated[
        Optional[str],
        typer.Option("--teacher", help="Teacher: a preset, an r1cli run, a HF folder, a hub id or an OpenAI-compatible URL."),
    ] = None,
    generate_only: Annotated[bool, typer.Option("--generate-only", help="Only write the trace dataset.")] = False,
    train_only: Annotated[
        bool, typer.Option("--train-only", help="Only train the student on existing traces (--input).")
    ] = False,
    input: InputOpt = None,
    recipe: RecipeOpt = None,
    set_: SetOpt = None,
    output: OutputOpt = None,
    seed: SeedOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    debug: DebugOpt = False,
    json_: JsonOpt = False,
    print_config: PrintConfigOpt = False,
    dry_run: DryRunOpt = False,
    dry_run_rows: DryRunRowsOpt = 2,
) -> None:
    run_stage(
        "distill",
        recipe=recipe,
        sets=set_,
        overrides={"model": model, "input": input, "output": output and str(output), "seed": seed,
                   "teacher": teacher, "generate_only": generate_only or None, "train_only": train_only or None},
        resume=resume,
        overwrite=overwrite,
        debug=debug,
        as_json=json_,
        print_config=print_config,
        dry_run=dry_run,
        dry_run_rows=dry_run_rows,
    )


distill.__doc__ = HELP["distill"]


def register(app: typer.Typer) -> None:
    for stage in HELP:
        app.command(stage, help=HELP[stage])(distill if stage == "distill" else _make(stage))
