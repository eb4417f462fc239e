"""Build the embedded base model: `--preset tiny` (trained here from scratch, offline) or `smollm2-135m` (from a GGUF wheel)."""

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


def base(
    preset: Annotated[
        Optional[str], typer.Option("--preset", help="tiny | tiny-test | smollm2-135m")
    ] = None,
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
        "base",
        recipe=recipe,
        sets=set_,
        overrides={"preset": preset, "output": output and str(output), "seed": seed},
        resume=resume,
        overwrite=overwrite,
        debug=debug,
        as_json=json_,
        print_config=print_config,
    )
