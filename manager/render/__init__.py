"""Specs -> Kubernetes manifests: one module per kind, one pure function per manifest.

Every function takes a frozen `RunSpec` and a frozen `RenderContext` and returns a plain
dict; nothing here reads the clock, the environment or a file, so the same inputs always
render the same bytes (golden files, `render --check`, GitOps).

A run becomes: the shared data Jobs it needs (student fetch, LiveCodeBench window, subset
build: named by content, identical for every run that needs them, so created once), its spec
ConfigMap, (once its MLflow run exists) an MLflow ConfigMap, a train Job (plus a headless
Service when it spans nodes), and an eval Job (vLLM + grader; for isolation `split` the grader
is its own Deployment, Service and NetworkPolicy). Commands and paths come from
manager.layout, as for the local backend. Gated Jobs are rendered suspended and name the Jobs
they wait for (`valley/needs`); `valleyctl reconcile` opens each when those have succeeded.
"""

from manager.render.configmaps import mlflow_configmap, spec_configmap
from manager.render.context import DEV_IMAGES, RenderContext
from manager.render.data import shared_objects
from manager.render.eval import eval_job
from manager.render.grader import grader_deployment, grader_network_policy, grader_service
from manager.render.run import is_shared, render_run, render_runs, to_yaml
from manager.render.train import train_job, train_service

__all__ = [
    "DEV_IMAGES",
    "RenderContext",
    "eval_job",
    "grader_deployment",
    "grader_network_policy",
    "grader_service",
    "is_shared",
    "mlflow_configmap",
    "render_run",
    "render_runs",
    "shared_objects",
    "spec_configmap",
    "to_yaml",
    "train_job",
    "train_service",
]
