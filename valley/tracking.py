"""MLflow helpers for workloads: attach to the run the control plane pre-created.

The control plane injects MLFLOW_RUN_ID and MLFLOW_TRACKING_URI into every pod and local
subprocess; workloads log into that run and never create their own.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


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

    try:
        with mlflow.start_run(run_id=run_id) as run:
            yield run
    finally:
        # mlflow.end_run() unsets MLFLOW_RUN_ID; what runs after (tune run's logger) must still attach
        os.environ["MLFLOW_RUN_ID"] = run_id
