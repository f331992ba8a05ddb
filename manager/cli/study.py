"""Study-level commands: `plan` (the grid) and `compare` (results read back from MLflow)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

StudyOpt = Annotated[str, typer.Option("--study", help="Study to use: valley (the paper's grid) or mini (local demo).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def plan_command(study: StudyOpt = "valley", as_json: JsonOpt = False) -> None:
    """List every run of a study with its step math, shared subsets, dependencies and GPU-hours.

    Examples:
      valleyctl plan
      valleyctl plan --study mini --json
    """
    from manager.plan import plan_rows, render_plan_table

    rows, assumptions = plan_rows(study)
    if as_json:
        print(json.dumps({"study": study, "runs": rows, "assumptions": assumptions}, indent=2))
    else:
        render_plan_table(study, rows, assumptions)


def compare_command(study: StudyOpt = "valley", as_json: JsonOpt = False) -> None:
    """Compare a study's runs from MLflow (being built: issue 6)."""
    raise SystemExit("valleyctl compare is not built yet")
