"""One module per `r1` subcommand; each maps options to a config and calls `run_stage`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from r1cli.commands import base, data, stages
    from r1cli.commands import eval as eval_

    app.command("base", help=base.__doc__)(base.base)
    app.command("data", help=data.__doc__)(data.data)
    stages.register(app)
    app.add_typer(eval_.app, name="eval")
