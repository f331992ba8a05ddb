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
    parent = tracker.client.get_run(tags["valley.study_run_id"])
    assert parent.data.tags["valley.kind"] == "study" and "mlflow.parentRunId" not in tags
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
