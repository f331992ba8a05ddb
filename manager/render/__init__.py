"""Specs -> Kubernetes manifests: one pure function per manifest kind.

Every function takes a frozen `RunSpec` and a frozen `RenderContext` and returns a plain
dict; nothing here reads the clock, the environment or a file, so the same inputs always
render the same bytes (golden files, `render --check`, GitOps).
"""

from manager.render.context import DEV_IMAGES, RenderContext
from manager.render.objects import (
    data_job,
    eval_job,
    grader_deployment,
    grader_network_policy,
    grader_service,
    mlflow_configmap,
    render_run,
    spec_configmap,
    train_job,
    train_service,
)

__all__ = [
    "DEV_IMAGES", "RenderContext", "data_job", "eval_job", "grader_deployment",
    "grader_network_policy", "grader_service", "mlflow_configmap", "render_run",
    "spec_configmap", "train_job", "train_service",
]
