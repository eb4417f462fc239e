"""Write a built-in task dataset (arith | countdown | linear) with exact answers, general prompts or preference
pairs, deterministic by seed."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from r1cli.commands.common import (
    DebugOpt,
    JsonOpt,
    OutputOpt,
    OverwriteOpt,
    PrintConfigOpt,
    RecipeOpt,
    ResumeOpt,
    SeedOpt,
    SetOpt,
    run_stage,
)


def data(
    task: Annotated[Optional[str], typer.Option("--task", help="arith | countdown | linear | general | preference")] = None,
    split: Annotated[Optional[str], typer.Option("--split", help="train | test")] = None,
    n: Annotated[Optional[int], typer.Option("--n", help="Number of rows.")] = None,
    source: Annotated[
        Optional[str],
        typer.Option("--from", help="Real prompts: gsm8k | math | a JSONL/Parquet file, dataset folder or hub id "
                     "(train split, answers normalised, decontaminated)."),
    ] = None,
    cold_start: Annotated[
        bool, typer.Option("--cold-start", help="Add readable worked solutions (a completion column) for coldstart.")
    ] = False,
    recipe: RecipeOpt = None,
    set_: SetOpt = None,
    output: OutputOpt = None,
    seed: SeedOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    debug: DebugOpt = False,
    json_: JsonOpt = False,
    print_config: PrintConfigOpt = False,
) -> None:
    run_stage(
        "data",
        recipe=recipe,
        sets=set_,
        overrides={
            "task": task,
            "split": split,
            "n": n,
            "source": source,
            "cold_start": cold_start or None,
            "output": output and str(output),
            "seed": seed,
        },
        resume=resume,
        overwrite=overwrite,
        debug=debug,
        as_json=json_,
        print_config=print_config,
    )
