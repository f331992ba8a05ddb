"""`valley grade` and `valley grader serve`: the grader's own command line (command.py), reached
from the `valley` CLI. Its arguments pass through unchanged, so both entry points share one
definition of the options, their defaults and the exit codes."""

from __future__ import annotations

import typer

from valley.cli_kit import typer_app
from valley.grader.command import main

grader_app = typer_app("Run the grader as a sidecar server.")
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def grade_command(ctx: typer.Context) -> None:
    """Grade generations against LiveCodeBench problems (options: valley grade --help).

    Example: valley grade --problems lcb.jsonl --generations eval/generations.jsonl --out eval/verdicts.jsonl
    """
    raise typer.Exit(main(["grade", *ctx.args], prog="valley"))


@grader_app.command("serve", context_settings=PASS_THROUGH, add_help_option=False)
def serve_command(ctx: typer.Context) -> None:
    """Serve GET /healthz and POST /grade (options: valley grader serve --help).

    Example: valley grader serve --port 8000
    """
    raise typer.Exit(main(["serve", *ctx.args], prog="valley grader"))
