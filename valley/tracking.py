"""MLflow helpers for workloads: attach to the run the control plane pre-created, and open a
stage's own run below it.

The control plane injects MLFLOW_RUN_ID and MLFLOW_TRACKING_URI into every pod and local
subprocess: the cell's run, created at launch. `valley data build` logs its dataset there.
`valley train` and `valley eval` each work in a child run of it (`<label>/train`,
`<label>/eval`), created when the stage starts and found again when it is retried, so its
duration counts the stage's work, not the time queued since launch; it records MLflow system
metrics (CPU, memory, GPU where present) while the stage runs.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

#: seconds between system-metric samples: a tiny demo stage lasts under a minute
SYSTEM_METRICS_INTERVAL_S = 5


@contextmanager
def attached_run() -> Iterator[object | None]:
    """Yield the pre-created MLflow run (active), or None when MLFLOW_RUN_ID is unset.

    Only rank 0 should call this in distributed jobs.
    """
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        yield None
        return
    import mlflow

    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:  # inside stage_run: that run, left open
        yield active
        return
    try:
        with mlflow.start_run(run_id=run_id) as run:
            yield run
    finally:
        # mlflow.end_run() unsets MLFLOW_RUN_ID; what runs after (tune run's logger) must still attach
        os.environ["MLFLOW_RUN_ID"] = run_id


@contextmanager
def stage_run(kind: str) -> Iterator[object | None]:
    """The stage's own run below the pre-created one, active and recording system metrics, with
    MLFLOW_RUN_ID pointing at it meanwhile (for the processes the stage starts); None when no
    run is attached. A run that raises ends FAILED, as mlflow.start_run leaves it."""
    parent_id = os.environ.get("MLFLOW_RUN_ID")
    if not parent_id:
        yield None
        return
    import mlflow

    run_id = stage_run_id(mlflow.MlflowClient(), parent_id, kind)
    mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
    mlflow.set_system_metrics_samples_before_logging(1)
    os.environ["MLFLOW_RUN_ID"] = run_id
    try:
        with mlflow.start_run(run_id=run_id, log_system_metrics=True) as run:
            yield run
    finally:
        os.environ["MLFLOW_RUN_ID"] = parent_id


def stage_run_id(client, parent_id: str, kind: str) -> str:
    """The stage's child run of `parent_id`: the newest one, else a new one."""
    from valley.vocabulary import KIND_TAG, LABEL_TAG, PARENT_RUN_TAG, stage_run_name, stage_tags, tag_filter

    parent = client.get_run(parent_id)
    found = client.search_runs(
        [parent.info.experiment_id],
        filter_string=tag_filter({PARENT_RUN_TAG: parent_id, KIND_TAG: kind}),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    created = client.create_run(
        parent.info.experiment_id,
        # named by the cell's label, whoever created the cell run (launch names it so; a run made by hand may not)
        run_name=stage_run_name(parent.data.tags.get(LABEL_TAG) or parent.info.run_name, kind),
        tags=stage_tags(parent_id, parent.data.tags, kind),
    )
    return created.info.run_id
