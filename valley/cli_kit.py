"""What every CLI shares, `valley` workloads and `valleyctl` alike: the Typer factory, the one
entry wrapper (known errors -> one line and the exit-code contract of valley.errors), the
`--run-spec` option and its loader, and the table console."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from valley.errors import CONFIG_ERROR_EXIT, ConfigError, exit_code, one_line, validation_error_line

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


#: what Ctrl-C prints (one line, no traceback): every command resumes where it stopped when rerun
INTERRUPTED = "interrupted; rerun the same command to resume (finished work is kept)"


def run_cli(app: typer.Typer, args: list[str] | None = None, *, prog_name: str | None = None) -> None:
    """Run a Typer app under the exit-code contract of valley.errors, with one error style.

    Every error is one line on stderr, `error: ...`: a bad command line (click's usage errors,
    printed by click as a boxed usage block) included, with the `--help` to read. A bad command
    line is a configuration error (exit 3): a retry cannot fix it, for a Job's fixed command line
    or for a person. Ctrl-C prints one line on how to resume and exits 130. Tracebacks only with
    VALLEY_DEBUG=1.
    """
    # typer (pinned) vendors click as typer._click: these are click's own usage errors
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    try:
        outcome = app(args=args, prog_name=prog_name, standalone_mode=False)
    except NoArgsIsHelpError as error:  # a bare group: its help, as --help shows it
        print(error.format_message())
        sys.exit(0)
    except UsageError as error:
        where = f"; see `{error.ctx.command_path} --help`" if error.ctx else ""
        print(f"error: {error.format_message().rstrip('.')}{where}", file=sys.stderr)
        sys.exit(CONFIG_ERROR_EXIT)
    except ClickException as error:  # a bad file argument and the like: still the user's to fix
        print(f"error: {error.format_message()}", file=sys.stderr)
        sys.exit(CONFIG_ERROR_EXIT)
    except (KeyboardInterrupt, typer.Abort):
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # the one place every command's errors end up
        if os.environ.get("VALLEY_DEBUG") == "1":
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(exit_code(error))
    # standalone_mode=False hands back what click would have exited with (`--help`, typer.Exit)
    sys.exit(outcome if isinstance(outcome, int) else 0)


def typer_app(help_text: str, *, program: str | None = None) -> typer.Typer:
    """A Typer app with the project's defaults: help on no args and on `-h`, plain exceptions, no
    rich markup surprises; a top-level app names its `program` and gets `--version`."""
    app = typer.Typer(
        help=help_text,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    if program is not None:

        def show_version(value: bool) -> None:
            if value:
                from importlib.metadata import version

                print(f"{program} {version('valley')}")
                raise typer.Exit()

        @app.callback()
        def _top(
            version: bool = typer.Option(
                False, "--version", callback=show_version, is_eager=True, help="Print the version and exit."
            ),
        ) -> None:
            pass

    return app


def console(*, stderr: bool = False):
    """A rich Console for tables (on stdout, or `stderr`): at the terminal's width, or wide enough
    not to truncate cells when the output goes to a file or a CI log (rich assumes 80 columns there)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr) if stream.isatty() else Console(stderr=stderr, width=200)


def on_path(program: str) -> str:
    """How to type `program` (valleyctl, mlflow) from here: its bare name when the environment
    running this is on PATH, else its path (`.venv/bin/valleyctl` after `make demo`), so a printed
    `next:` line works as written."""
    import shutil

    here = Path(sys.executable).parent / program
    if shutil.which(program) == str(here):
        return program
    try:
        return str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)
