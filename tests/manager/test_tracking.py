"""MLflow run records, read back from a real sqlite store."""

import json

from manager.study import valley_study
from manager.tracking import SCHEDULED, Tracker, flat_params, resolve_tracking_uri


def test_run_record_is_complete_and_idempotent(mlflow_uri, tmp_path):
    tracker = Tracker(mlflow_uri)
    run = next(r for r in valley_study() if r.label == "qwen-30k+correct-6k")
    run_id, created = tracker.ensure_run(run, manifests="kind: Job\n")
    again, created_again = tracker.ensure_run(run)
    assert created and not created_again and again == run_id

    record = tracker.client.get_run(run_id)
    tags = record.data.tags
    assert tags["valley.study"] == "valley" and tags["valley.run_name"] == run.name
    assert tags["valley.label"] == "qwen-30k+correct-6k" and tags["valley.spec_hash"] == run.spec_hash
    assert tags["valley.rq"] == "rq2" and tags["valley.base"] == "qwen-30k"
    assert record.info.status == SCHEDULED and record.info.run_name == run.label
    params = record.data.params
    assert params["train.lr"] == "8e-05" and params["data.size"] == "6000" and params["base"] == run.base.name
    assert params == flat_params(run)

    experiment = tracker.client.get_experiment(record.info.experiment_id)
    assert experiment.name == "valley-valley"
    # issue 22: MLflow's "model training" type, so the UI opens on the runs table, not the GenAI overview
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(experiment.tags["mlflow.sharedViewState.valley"])
    assert (
        "metrics.`eval/pass_at_1`" in view["selectedColumns"]
        and "metrics.`eval/pass_at_1_ci_low`" in view["selectedColumns"]
    )
    parent = tracker.client.get_run(tags["valley.study_run_id"])
    assert parent.data.tags["valley.kind"] == "study" and tags["mlflow.parentRunId"] == parent.info.run_id  # nested
    assert tracker.study_run_id("valley") == parent.info.run_id

    local = tracker.client.download_artifacts(run_id, "spec/run.json", dst_path=str(tmp_path))
    spec = json.loads(open(local).read())
    assert spec["data"]["subset"] == "correct"
    artifacts = {a.path for a in tracker.client.list_artifacts(run_id, "manifests")}
    assert artifacts == {"manifests/manifests.yaml"}
    assert [r.info.run_id for r in tracker.study_runs("valley")] == [run_id]


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert resolve_tracking_uri() == "http://mlflow:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_stage_runs_nest_under_the_run_and_end_with_it(mlflow_uri, monkeypatch):
    """`valley train`/`valley eval` each open their own child run (their durations count their work);
    one stopped from outside (cancel, a killed pod) ends with the run; a store from before the
    experiment's kind tag gets it."""
    from valley.tracking import stage_run

    tracker = Tracker(mlflow_uri)
    old = tracker.client.create_experiment("valley-mini")  # as an older valley made it: no kind
    run = next(r for r in valley_study() if r.label == "qwen-10k").model_copy(update={"study": "mini"})
    run_id, _ = tracker.ensure_run(run)
    assert tracker.client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    with stage_run("eval") as first:
        import os

        assert os.environ["MLFLOW_RUN_ID"] == first.info.run_id  # for the processes the stage starts
    assert os.environ["MLFLOW_RUN_ID"] == run_id
    with stage_run("train") as train:
        pass
    with stage_run("eval") as again:  # a retried stage finds its run again
        assert again.info.run_id == first.info.run_id
    tracker.client.update_run(again.info.run_id, status="RUNNING")  # its pod was killed mid-way
    evaluation, _ = tracker.evaluations("mini")[run_id]
    assert evaluation.info.run_name == "qwen-10k/eval" and evaluation.data.tags["mlflow.parentRunId"] == run_id
    assert tracker.stage_runs("mini", "train")[run_id].info.run_id == train.info.run_id
    tracker.set_status(run_id, "KILLED")
    assert tracker.client.get_run(first.info.run_id).info.status == "KILLED"
    assert tracker.client.get_run(train.info.run_id).info.status == "FINISHED"  # it had ended: left as it was
