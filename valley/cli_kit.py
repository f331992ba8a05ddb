"""What every CLI shares, `valley` workloads and `valleyctl` alike: the Typer factory, the one
entry wrapper (known errors -> one line and the exit-code contract of valley.errors), the
`--run-spec` option and its loader, and the table console."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable

import typer

from valley.errors import ConfigError, exit_code, one_line, validation_error_line

if TYPE_CHECKING:
    from valley.spec import RunSpec

RunSpecOpt = Annotated[Path, typer.Option("--run-spec", help="the run's RunSpec JSON (written by valleyctl)")]


def load_run_spec(path: Path) -> "RunSpec":
    """The RunSpec a workload was launched with; a missing or invalid file is a ConfigError (exit 3)."""
    from pydantic import ValidationError

    from valley.spec import RunSpec

    try:
        return RunSpec.from_json(path.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"--run-spec: {path} does not exist; pass the RunSpec JSON valleyctl wrote") from None
    except ValidationError as error:
        raise ConfigError(f"--run-spec: {validation_error_line(error)}") from None


def run_cli(app: Callable[[], object], *, usage_error_exit: int = 2) -> None:
    """Run a Typer app; known errors become one line on stderr and their exit code (valley.errors).

    `usage_error_exit` replaces click's exit code 2 for a bad command line: the workloads pass
    CONFIG_ERROR_EXIT, since a Job's command line is as fixed as its spec and a retry cannot fix it.
    Tracebacks only with VALLEY_DEBUG=1.
    """
    try:
        app()
    except SystemExit as done:
        if done.code == 2:  # click's usage error, already printed with the usage line
            sys.exit(usage_error_exit)
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # the one place every command's errors end up
        if os.environ.get("VALLEY_DEBUG") == "1":
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(exit_code(error))


def typer_app(help_text: str) -> typer.Typer:
    """A Typer app with the project's defaults: help on no args, plain exceptions, no rich markup surprises."""
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )


def console(*, stderr: bool = False):
    """A rich Console for tables (on stdout, or `stderr`): at the terminal's width, or wide enough
    not to truncate cells when the output goes to a file or a CI log (rich assumes 80 columns there)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr) if stream.isatty() else Console(stderr=stderr, width=200)
