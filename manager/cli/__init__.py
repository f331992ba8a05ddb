"""`valleyctl`: the control plane CLI. One module per noun; bodies stay short.

Only typer, rich and pydantic load at import time so `valleyctl --help` answers fast;
mlflow and kubernetes load inside the commands that use them.
"""

from __future__ import annotations

from manager.cli.images import images_app
from manager.cli.runs import (
    cancel_command,
    launch_command,
    logs_command,
    reconcile_command,
    render_command,
    status_command,
)
from manager.cli.store import store_app
from manager.cli.study import compare_command, plan_command
from valley.cli_kit import run_cli, typer_app

app = typer_app(
    "Plan, render, launch and compare the runs of a distillation study.\n\n"
    "Example: valleyctl launch --size 10k --model llama",
    program="valleyctl",
)
app.command("plan")(plan_command)
app.command("compare")(compare_command)
app.command("render")(render_command)
app.command("launch")(launch_command)
app.command("status")(status_command)
app.command("logs")(logs_command)
app.command("cancel")(cancel_command)
app.command("reconcile")(reconcile_command)
app.add_typer(images_app, name="images")
app.add_typer(store_app, name="store")


def main() -> None:
    run_cli(app, prog_name="valleyctl")
