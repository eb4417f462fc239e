"""`r1 eval compare RUN...`: several eval runs side by side (the `r1 eval` stage itself is a row of the command
table in `r1cli.commands`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(no_args_is_help=False)


@app.command("compare")
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Eval run folders (or any stage run holding eval results).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the comparison PNG here.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the results as one JSON object on stdout.")] = False,
) -> None:
    """Side-by-side table of several eval runs, and a PNG chart."""
    from r1cli.stages.eval import compare_runs

    compare_runs(runs, output=output, as_json=json_)
