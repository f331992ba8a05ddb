"""Study-level commands: `plan` (the grid) and `compare` (results read back from MLflow)."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from manager.cli.options import COMPARE_OUT, CompareOutOpt, JsonOpt, StudyOpt, TrackingOpt
from manager.cli.output import Output


def plan_command(study: StudyOpt = "valley", as_json: JsonOpt = False) -> None:
    """List every run of a study with its step math, shared subsets, dependencies and GPU-hours.

    \b
    Examples:
      valleyctl plan
      valleyctl plan --study mini --json
    """
    from manager.plan import plan_rows, render_plan_table

    rows, assumptions = plan_rows(study)
    out = Output(as_json)
    out.result(
        {"study": study, "runs": rows, "assumptions": assumptions},
        lambda: render_plan_table(study, rows, assumptions, out),
    )


def compare_command(
    study: StudyOpt = "valley",
    as_json: JsonOpt = False,
    out: CompareOutOpt = COMPARE_OUT,
    target: Annotated[
        Optional[float],
        typer.Option("--target", help="pass@1 to reach: print the data size the post-valley fit predicts."),
    ] = None,
    tracking_uri: TrackingOpt = None,
    allow_mixed_eval: Annotated[
        bool, typer.Option("--allow-mixed-eval", help="Compare runs even if their eval specs differ.")
    ] = False,
    log_to_study_run: Annotated[
        bool,
        typer.Option(
            "--log-to-study-run", help="Also log the plot and JSON to the study's MLflow run (default: only --out)."
        ),
    ] = False,
) -> None:
    """Tables 1-2 beside the paper's numbers, paired bootstraps, the valley plot and fit, from MLflow.

    \b
    Examples:
      valleyctl compare --study mini
      valleyctl compare --study valley --target 0.4 --json
      valleyctl compare --study mini --log-to-study-run
    """
    from manager.compare import compare_study, render

    result = compare_study(
        study,
        tracking_uri,
        out,
        target=target,
        allow_mixed_eval=allow_mixed_eval,
        log_to_study_run=log_to_study_run,
        # inside an MLflow run (`mlflow run . -e compare` creates one): its plot and summary go there
        log_to_run=os.environ.get("MLFLOW_RUN_ID") or None,
    )
    output = Output(as_json)
    output.result(result, lambda: render(result, output.console))
