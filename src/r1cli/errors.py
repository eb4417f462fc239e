"""Known errors and their exit codes.

The CLI's error boundary (`r1cli.cli.main`) turns an `R1Error` into one red line plus a hint on stderr and exits
with the error's code; any other exception is a stage failure (exit 4) whose traceback is shown only with
`--debug` or `R1CLI_DEBUG=1`.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2  # bad command line, recipe or config value
EXIT_INPUT = 3  # bad input artifact (missing, incomplete manifest, wrong kind, bad columns)
EXIT_STAGE = 4  # the stage itself failed


class R1Error(Exception):
    """An error we know how to explain in one line."""

    exit_code = EXIT_STAGE

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(R1Error):
    """A recipe, `--set` or option value is wrong (unknown key, wrong type, value out of range)."""

    exit_code = EXIT_USAGE


class UsageError(R1Error):
    """The command line is wrong in a way that is not a config value (e.g. output folder not empty)."""

    exit_code = EXIT_USAGE


class InputArtifactError(R1Error):
    """An input artifact is missing, incomplete, of the wrong kind or lacks required columns."""

    exit_code = EXIT_INPUT


class StageError(R1Error):
    """The stage ran and failed for a known reason."""

    exit_code = EXIT_STAGE

