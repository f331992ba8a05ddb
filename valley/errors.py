"""User-facing errors and the shared CLI entry wrapper for `valley` and `valleyctl`."""

from __future__ import annotations

import os
import sys
from typing import Callable


class ValleyError(Exception):
    """An error the user can fix: printed as one line naming the field or object and the fix."""


def one_line(error: BaseException) -> str:
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        from manager.specs import spec_error_line

        return spec_error_line(error)
    if isinstance(error, ValleyError):
        return str(error)
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return f"{error.strerror}: {error.filename}"
    return f"{type(error).__name__}: {error} (set VALLEY_DEBUG=1 for the traceback)"


def run_cli(app: Callable[[], object]) -> None:
    """Run a Typer app; known errors become one line on stderr and exit 1.

    Tracebacks only with VALLEY_DEBUG=1.
    """
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # the one place every command's errors end up
        if os.environ.get("VALLEY_DEBUG") == "1":
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(1)


def typer_app(help_text: str):
    """A Typer app with the project's defaults: help on no args, plain exceptions, no rich markup surprises."""
    import typer

    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )


def console():
    """A rich Console for tables: at the terminal's width, or wide enough not to truncate cells
    when the output goes to a file or a CI log (rich assumes 80 columns there)."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)
