#!/usr/bin/env python3
"""Screenshot the MLflow UI over the demo's store: the runs table of a study's experiment,
and the valley plot logged to the study run.

    .venv/bin/python scripts/mlflow-ui-screenshot.py [--store sqlite:///mlflow.db] [--study mini] [--out ui]

Starts `mlflow server` on a free local port, opens the pages in headless Chromium, writes
OUT/runs.png and OUT/study-plot.png (the study run's plot artifact), and stops the server.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def first_png(client, run_id: str, path: str | None = None) -> str | None:
    """The first PNG among a run's artifacts (the valley plot), depth first."""
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found = first_png(client, run_id, item.path)
            if found:
                return found
        elif item.path.endswith(".png"):
            return item.path
    return None


def main() -> None:
    from manager.mlflow_ui import experiment_url, mlflow_server, run_url, screenshot
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
    study_run = tracker.study_run_id(args.study)
    plot = first_png(tracker.client, study_run)
    with tempfile.TemporaryDirectory() as workdir, mlflow_server(store, workdir=Path(workdir)) as server:
        shots = [
            screenshot(experiment_url(server, experiment.experiment_id), args.out.resolve() / "runs.png"),
            screenshot(
                run_url(server, experiment.experiment_id, study_run, f"artifacts/{plot or ''}"),
                args.out.resolve() / "study-plot.png",
            ),
        ]
    for shot in shots:
        print(shot)


if __name__ == "__main__":
    main()
