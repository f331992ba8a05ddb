"""`valley`: the workload commands that run inside pods and locally.

Each noun lives in its own module; heavy libraries (torch, torchtune, vllm) are imported
inside the command bodies so `valley --help` stays fast.
"""

from __future__ import annotations

from valley.cli_kit import run_cli, typer_app
from valley.data.cli import data_app
from valley.eval.cli import eval_command
from valley.grader.cli import PASS_THROUGH, grade_command, grader_app
from valley.train.cli import model_app, train_command

app = typer_app(
    "valley workloads: build data, train, evaluate and grade.\n\n"
    "Example: valley eval --run-spec run.json --model MODEL_DIR --out EVAL_DIR",
    program="valley",
)
app.add_typer(data_app, name="data")
app.add_typer(grader_app, name="grader")
app.add_typer(model_app, name="model")
app.command("grade", context_settings=PASS_THROUGH, add_help_option=False)(grade_command)
app.command("train")(train_command)
app.command("eval")(eval_command)


def main() -> None:
    run_cli(app, prog_name="valley")


if __name__ == "__main__":
    main()
