"""The run's spec ConfigMap and the ConfigMap naming its MLflow run."""

from __future__ import annotations

from manager.render.common import (
    metadata,
)
from manager.render.context import RenderContext
from valley.spec import RunSpec


def spec_configmap(run: RunSpec, ctx: RenderContext) -> dict:
    """The RunSpec every pod reads (`--run-spec /etc/valley/run.json`)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(run, ctx, f"{run.name}-spec", "config"),
        "data": {"run.json": run.to_json()},
    }


def mlflow_configmap(run: RunSpec, ctx: RenderContext) -> dict:
    """The pre-created MLflow run the pods attach to."""
    assert ctx.run_id is not None, "mlflow_configmap needs ctx.run_id"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(run, ctx, f"{run.name}-mlflow", "config"),
        "data": {"run_id": ctx.run_id, "tracking_uri": ctx.tracking_uri},
    }
