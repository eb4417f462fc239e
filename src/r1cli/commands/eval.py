"""`r1 eval`: pass@1 over k samples, cons@k by math equivalence, on built-in tasks and math benchmarks;
`r1 eval compare RUN...` puts several eval runs side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from r1cli.commands.common import (
    DebugOpt,
    DryRunOpt,
    DryRunRowsOpt,
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

app = typer.Typer(
    help="Evaluate a model (pass@1 over k samples, cons@k, format rate, lengths); `r1 eval compare RUN...`.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@app.callback()
def eval_(
    ctx: typer.Context,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model to evaluate.")] = None,
    benchmark: Annotated[
        Optional[list[str]],
        typer.Option("--benchmark", "-b", help="Known name (arith, math500, gsm8k, aime24, ...), hub id or file; repeatable."),
    ] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="Samples per problem.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Evaluate the first N problems.")] = None,
    oracle: Annotated[
        bool, typer.Option("--oracle", help="Grade the dataset's reference solutions instead of a model.")
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
    dry_run: DryRunOpt = False,
    dry_run_rows: DryRunRowsOpt = 2,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    run_stage(
        "eval",
        recipe=recipe,
        sets=set_,
        overrides={
            "model": model,
            "benchmarks": benchmark or None,
            "k": k,
            "limit": limit,
            "oracle": oracle or None,
            "output": output and str(output),
            "seed": seed,
        },
        resume=resume,
        overwrite=overwrite,
        debug=debug,
        as_json=json_,
        print_config=print_config,
        dry_run=dry_run,
        dry_run_rows=dry_run_rows,
    )


@app.command("compare")
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Eval run folders (or any stage run holding eval results).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the comparison PNG here.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Side-by-side table of several eval runs, and a PNG chart."""
    from r1cli.stages.eval import compare_runs

    compare_runs(runs, output=output, as_json=json_)
