"""The MLflow UI shows a study's runs and its plot: a real `mlflow server` over a sqlite
store written by the Tracker, opened in headless Chromium."""

import shutil

import pytest

from manager.mlflow_ui import dump_dom, experiment_url, mlflow_server, page_text, run_url, screenshot
from manager.study import mini_study
from manager.tracking import Tracker

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("chromium"), reason="chromium not installed")]


def test_ui_lists_runs_and_the_plot_artifact(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri)
    runs = mini_study()[:3]
    run_ids = {}
    for i, run in enumerate(runs):
        run_ids[run.label], _ = tracker.ensure_run(run)
        tracker.client.log_metric(run_ids[run.label], "pass_at_1", 0.125 * (i + 1))
        tracker.set_status(run_ids[run.label], "FINISHED")
    study_run = tracker.study_run_id("mini")
    figure, axis = plt.subplots()
    axis.semilogx([40, 120, 300], [0.1, 0.05, 0.2], marker="o")
    figure.savefig(tmp_path / "valley.png")
    tracker.client.log_artifact(study_run, str(tmp_path / "valley.png"))
    experiment = tracker.experiment_id("mini")

    with mlflow_server(uri, workdir=tmp_path) as server:
        table = page_text(dump_dom(experiment_url(server, experiment)))
        assert "study-mini" in table and "4 matching runs" in table
        for i, run in enumerate(runs):
            assert run.label in table, f"{run.label} missing from the runs table"
            page = page_text(dump_dom(run_url(server, experiment, run_ids[run.label])))
            assert run.label in page and "pass_at_1" in page and f"{0.125 * (i + 1)}" in page
        artifacts = page_text(dump_dom(run_url(server, experiment, study_run, "artifacts")))
        assert "valley.png" in artifacts
        png = screenshot(experiment_url(server, experiment), tmp_path / "ui.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
