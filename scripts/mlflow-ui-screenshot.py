#!/usr/bin/env python3
"""Screenshot the MLflow UI over a study's store, as a researcher reads it: the runs table in
valley's view (the study run and one cell unfolded, pass@1 and its CI as columns), a training
run's charts, an evaluation run, MLflow's compare view of the evaluations, and compare's
valley plot in the study run.

    .venv/bin/python scripts/mlflow-ui-screenshot.py [--store sqlite:///mlflow.db] [--study mini] [--out ui]

Starts `mlflow server` on a free local port, opens each page in headless Chromium, waits until it
has rendered (charts drawn, nothing loading), writes OUT/<page>.png and stops the server.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EXPANDER = "button[data-component-id*='runnamecellrenderer']"


def main() -> None:
    from manager.mlflow_ui import (
        browser,
        compare_url,
        mlflow_server,
        open_rendered,
        run_url,
        runs_view_url,
    )
    from manager.study import study_runs
    from manager.tracking import Tracker, experiment_name, resolve_tracking_uri

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--study", default="mini")
    parser.add_argument("--out", type=Path, default=Path("ui"))
    args = parser.parse_args()

    store = resolve_tracking_uri(args.store)
    tracker = Tracker(store)
    experiment = tracker.client.get_experiment_by_name(experiment_name(args.study))
    if experiment is None:
        sys.exit(f"error: {store} has no experiment {experiment_name(args.study)}; run `make demo` first")
    experiment_id = experiment.experiment_id
    evaluations = sorted((run for run, _ in tracker.evaluations(args.study).values()), key=lambda r: r.info.run_name)
    trains = sorted(tracker.stage_runs(args.study, "train").values(), key=lambda r: r.info.run_name)
    if not evaluations or not trains:
        sys.exit(f"error: {store} has no evaluated and trained runs of study {args.study}; run `make demo` first")
    # the cell to unfold and show: the study's largest trained run that has a train run
    sizes = {run.label: run.data.size for run in study_runs(args.study) if run.data is not None}
    largest = max(
        (r for r in trains if r.info.run_name.split("/")[0] in sizes),
        key=lambda r: sizes[r.info.run_name.split("/")[0]],
    )
    cell = largest.info.run_name.split("/")[0]
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir, mlflow_server(store, workdir=Path(workdir)) as server:
        with browser() as page:
            open_rendered(page, runs_view_url(server, experiment_id), showing=f"study-{args.study}")
            page.locator("[role=row]", has_text=f"study-{args.study}").locator(EXPANDER).first.click()
            page.get_by_text(cell, exact=True).first.wait_for()
            page.locator("[role=row]", has_text=cell).locator(EXPANDER).first.click()
            page.get_by_text(f"{cell}/eval").first.wait_for()
            page.screenshot(path=str(out / "runs.png"))
            shots = [out / "runs.png"]
            pages = {
                "train.png": (run_url(server, experiment_id, largest.info.run_id, "model-metrics"), "loss", 1),
                "eval.png": (run_url(server, experiment_id, evaluations[-1].info.run_id), "eval/pass_at_1", 0),
                "compare.png": (
                    compare_url(server, experiment_id, [r.info.run_id for r in evaluations]),
                    f"Comparing {len(evaluations)} Runs",
                    1,
                ),
                "study-plot.png": (
                    run_url(
                        server,
                        experiment_id,
                        tracker.study_run_id(args.study),
                        f"artifacts/compare/valley-{args.study}.png",
                    ),
                    f"valley-{args.study}.png",
                    0,
                ),
            }
            for name, (url, showing, charts) in pages.items():
                open_rendered(page, url, showing=showing, charts=charts)
                page.screenshot(path=str(out / name))
                shots.append(out / name)
    for shot in shots:
        print(shot)


if __name__ == "__main__":
    main()
