"""The `r1` command: root app and error boundary.

Nothing heavy is imported here: each command module imports its config and stage only when it runs, so
`r1 --help` stays fast (`from trl import GRPOTrainer` alone costs ~9 s).

Error boundary (like the `hf` CLI): a known error (`R1Error`, click usage errors) prints one red line and a hint
on stderr and exits with its code (2 usage/config, 3 bad input artifact, 4 stage failure); an unexpected one
exits 4 with a one-line summary; the traceback is shown only with `--debug` or `R1CLI_DEBUG=1`.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from r1cli import __version__
from r1cli.commands import register

app = typer.Typer(
    name="r1",
    help="Reproduce the DeepSeek-R1 recipe: cold start, GRPO, rejection sampling, alignment, distillation, eval.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"r1cli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks (same as R1CLI_DEBUG=1)."),
) -> None:
    if debug:
        os.environ["R1CLI_DEBUG"] = "1"


register(app)


def _fail(code: int, message: str, hint: str | None = None) -> int:
    from r1cli.console import err

    console = err()
    console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    if hint:
        console.print(f"[dim]hint: {hint}[/]", markup=True, highlight=False, soft_wrap=True)
    return code


def _escape(s: str) -> str:
    from rich.markup import escape

    return escape(s)


def _click_exceptions():
    """Typer >= 0.29 vendors click as `typer._click`; accept both that and a plain click."""
    mods = []
    try:
        from typer._click import exceptions as vendored

        mods.append(vendored)
    except ImportError:
        pass
    try:
        from click import exceptions as plain

        mods.append(plain)
    except ImportError:
        pass
    get = lambda name: tuple(getattr(m, name) for m in mods if hasattr(m, name))  # noqa: E731
    return get("Exit"), get("Abort"), get("ClickException")


def main(argv: list[str] | None = None) -> None:
    from r1cli.console import debug_enabled
    from r1cli.errors import EXIT_STAGE, EXIT_USAGE, R1Error

    ClickExit, ClickAbort, ClickError = _click_exceptions()

    args = sys.argv[1:] if argv is None else argv
    if "--debug" in args:
        os.environ["R1CLI_DEBUG"] = "1"
    try:
        rc = app(args=args, prog_name="r1", standalone_mode=False)
        code = rc if isinstance(rc, int) else 0
    except ClickExit as e:
        code = e.exit_code
    except ClickAbort:
        code = _fail(130, "aborted")
    except ClickError as e:  # usage errors: unknown option, missing argument, bad choice
        code = _fail(EXIT_USAGE, _escape(e.format_message()), "add --help to see the options")
    except R1Error as e:
        if debug_enabled():
            import traceback

            traceback.print_exc()
        code = _fail(e.exit_code, _escape(e.message), _escape(e.hint) if e.hint else None)
    except KeyboardInterrupt:
        code = _fail(130, "interrupted")
    except Exception as e:  # an unexpected stage failure
        if debug_enabled():
            import traceback

            traceback.print_exc()
            hint = None
        else:
            hint = "rerun with --debug (or R1CLI_DEBUG=1) for the traceback"
        first = (str(e).strip().splitlines() or [""])[0][:300]
        code = _fail(EXIT_STAGE, _escape(f"{type(e).__name__}: {first}"), hint)
    sys.stdout.flush()
    sys.exit(code)
