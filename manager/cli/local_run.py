"""`valleyctl launch --executor local`: record the runs, run their steps here, compare."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from manager.layout import Layout
from valley.spec import RunSpec
from valley.files import write_atomic


def launch_local(runs: list[RunSpec], tracking_uri: str | None, *, dry_run: bool) -> None:
    from valley.cli_kit import console as make_console

    from manager.local import execute, plan_steps

    console = make_console()
    layout = Layout.at(".")
    if dry_run:
        for step in plan_steps(runs, layout, {r.name: "<mlflow-run-id>" for r in runs}):
            console.print(f"[bold]{step.title}[/]: {' '.join(step.command)}", soft_wrap=True)
        return
    from manager.tracking import FAILED, FINISHED, RUNNING, Tracker

    start = time.perf_counter()
    tracker = Tracker(tracking_uri)
    run_ids = {}
    for run in runs:
        run_ids[run.name], created = tracker.ensure_run(run)
        layout.write_spec(run)
    studies = sorted({r.study for r in runs})
    console.print(f"MLflow {tracker.uri}: {len(runs)} run(s) in experiment(s) {', '.join(f'valley-{s}' for s in studies)}")
    study_runs = [tracker.study_run_id(study) for study in studies]
    for study_run in study_runs:
        tracker.set_status(study_run, RUNNING)
    outcome = execute(plan_steps(runs, layout, run_ids), tracker, console=console)
    total = time.perf_counter() - start
    write_atomic(layout.root / "timings.json", json.dumps({"total_s": round(total, 1), "steps_s": {
        k: round(v, 1) for k, v in outcome.seconds.items()}}, indent=2))
    console.print(f"{len(outcome.done)} step(s) run, {len(outcome.reused)} reused, {len(outcome.failed)} failed, "
                  f"{len(outcome.skipped)} skipped in {total:.0f} s")
    compared = all(compare(study, tracker.uri) for study in studies) if outcome.ok else False
    for study_run in study_runs:
        tracker.set_status(study_run, FINISHED if outcome.ok and compared else FAILED)
    console.print(f"next: mlflow ui --backend-store-uri {tracker.uri}    valleyctl status --study {studies[0]}")
    if not (outcome.ok and compared):
        raise SystemExit(1)


def compare(study: str, tracking_uri: str) -> bool:
    """`valleyctl compare --study S`: the tables and the valley plot from the runs just made."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    return subprocess.call([sys.executable, "-m", "manager", "compare", "--study", study], env=env) == 0
