"""valley.tracking.attached_run against a real sqlite MLflow store."""

from __future__ import annotations


def test_attached_run_logs_into_the_precreated_run_and_keeps_it_attachable(mlflow_uri, monkeypatch) -> None:
    import mlflow

    client = mlflow.MlflowClient(mlflow_uri)
    run_id = client.create_run(client.create_experiment("valley-test")).info.run_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    from valley.tracking import attached_run

    with attached_run() as run:
        mlflow.log_param("stage", "data")
    assert run.info.run_id == run_id
    # end_run() unsets MLFLOW_RUN_ID; a later stage in the same process (or its `tune run` child) must still attach
    import os

    assert os.environ["MLFLOW_RUN_ID"] == run_id
    with attached_run():
        mlflow.log_metric("loss", 1.0)
    logged = client.get_run(run_id)
    assert logged.data.params == {"stage": "data"} and logged.data.metrics == {"loss": 1.0}
    assert len(client.search_runs([logged.info.experiment_id])) == 1


def test_attached_run_is_none_without_a_run_id(monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    from valley.tracking import attached_run

    with attached_run() as run:
        assert run is None
