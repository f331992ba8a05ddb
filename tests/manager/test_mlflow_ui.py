"""The MLflow UI as a researcher reads a study, in a real browser: a real `mlflow server` over a
sqlite store written by the Tracker and the workloads' own recording code, opened in headless
Chromium (Debian's, driven by Playwright); every page is waited on until its content has
rendered. Chromium is installed by `make setup`: missing, the test fails (manager.mlflow_ui)."""

import pytest

from manager.compare import compare_study
from manager.mlflow_ui import (
    browser,
    compare_url,
    experiment_url,
    mlflow_server,
    open_rendered,
    run_url,
    runs_view_url,
)
from manager.study import mini_study
from tests.manager.stores import new_store, record_synthetic

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

#: the button that folds a parent run's children in MLflow's runs table
EXPANDER = "button[data-component-id*='runnamecellrenderer']"


@pytest.fixture(scope="module")
def study_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui-store")
    uri, tracker = new_store(root)
    runs = [r for r in mini_study() if r.label in ("tiny-qwen-baseline", "tiny-qwen-40", "tiny-qwen-400")]
    for run in runs:
        record_synthetic(tracker, run, root / "eval", train=True)
    compare_study("mini", uri, root / "cmp", log_to_study_run=True)
    return root, uri, tracker


def test_a_study_reads_in_the_browser(study_store):
    root, uri, tracker = study_store
    experiment = tracker.experiment_id("mini")
    evaluations = {run.info.run_name: run for run, _ in tracker.evaluations("mini").values()}
    (train,) = [
        run for run in tracker.stage_runs("mini", "train").values() if run.info.run_name == "tiny-qwen-400/train"
    ]
    study_run = tracker.study_run_id("mini")

    with mlflow_server(uri, workdir=root) as server, browser() as page:
        # the experiment as valley links it lands on the runs table (issue 22: the GenAI overview)
        text = open_rendered(page, experiment_url(server, experiment), showing="study-mini")
        assert "/runs" in page.url or "Runs" in text.split("study-mini")[0], page.url
        assert "Traces Latency" not in text and "Token Usage" not in text

        # the saved view: pass@1 and its CI as columns; the study run's children, then a cell's stages
        text = open_rendered(page, runs_view_url(server, experiment), showing="study-mini")
        page.locator("[role=row]", has_text="study-mini").locator(EXPANDER).first.click()
        page.get_by_text("tiny-qwen-400", exact=True).first.wait_for()
        page.locator("[role=row]", has_text="tiny-qwen-400").locator(EXPANDER).first.click()
        page.get_by_text("tiny-qwen-400/eval").first.wait_for()
        headers = " ".join(page.locator("[role=columnheader]").all_inner_texts())
        for column in ("eval/pass_at_1", "eval/pass_at_1_ci_low", "eval/pass_at_1_ci_high", "train/loss"):
            assert column in headers, headers
        # the eval row's pass@1 cell (the grid draws a row's pinned name and its metrics apart)
        index = page.locator("[role=row]", has_text="tiny-qwen-400/eval").first.get_attribute("row-index")
        cells = " ".join(page.locator(f"[role=row][row-index='{index}']").all_inner_texts())
        metrics = tracker.evaluations("mini")[evaluations["tiny-qwen-400/eval"].data.tags["mlflow.parentRunId"]][1]
        assert str(metrics["pass_at_1"])[:5] in cells, (metrics["pass_at_1"], cells)

        # a training run: its loss chart drawn under train/, system metrics beside it
        text = open_rendered(
            page, run_url(server, experiment, train.info.run_id, "model-metrics"), showing="loss", charts=1
        )
        assert "tiny-qwen-400/train" in text and "train" in text and "System metrics" in text

        # an evaluation run: pass@1 with its CI bounds, under eval/
        eval_run = evaluations["tiny-qwen-400/eval"]
        text = open_rendered(page, run_url(server, experiment, eval_run.info.run_id), showing="eval/pass_at_1")
        assert "eval/pass_at_1_ci_low" in text and "eval/pass_at_1_ci_high" in text and "valley.eval_spec" in text

        # the compare view of the evaluations, and compare's own plot in the study run
        ids = [run.info.run_id for run in evaluations.values()]
        text = open_rendered(page, compare_url(server, experiment, ids), showing="Comparing 3 Runs", charts=1)
        assert all(name in text for name in evaluations) and "eval/pass_at_1" in text
        text = open_rendered(
            page, run_url(server, experiment, study_run, "artifacts/compare/valley-mini.png"), showing="valley-mini.png"
        )
        page.wait_for_function(
            "() => [...document.images].some(image => image.naturalWidth >= 1000)"
        )  # the plot, drawn
