"""Specs -> Kubernetes manifests: one module per kind, one pure function per manifest.

Every function takes a frozen `RunSpec` and a frozen `RenderContext` and returns a plain
dict; nothing here reads the clock, the environment or a file, so the same inputs always
render the same bytes (golden files, `render --check`, GitOps).

A run becomes: its spec ConfigMap, (once its MLflow run exists) an MLflow ConfigMap, a
data Job (model fetch + subset build), a train Job (plus a headless Service when it spans
nodes), and an eval Job (vLLM + grader; for isolation `split` the grader is its own
Deployment, Service and NetworkPolicy). Gated Jobs are rendered suspended; `valleyctl
reconcile` opens each gate when the Job it waits for has succeeded.
"""

from manager.render.configmaps import mlflow_configmap, spec_configmap
from manager.render.context import DEV_IMAGES, RenderContext
from manager.render.data import data_job
from manager.render.eval import eval_job
from manager.render.grader import grader_deployment, grader_network_policy, grader_service
from manager.render.run import render_run, to_yaml
from manager.render.train import train_job, train_service

__all__ = [
    "DEV_IMAGES", "RenderContext", "data_job", "eval_job", "grader_deployment",
    "grader_network_policy", "grader_service", "mlflow_configmap", "render_run",
    "spec_configmap", "to_yaml", "train_job", "train_service",
]
