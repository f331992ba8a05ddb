"""Every object of one run (or of several, shared data Jobs once), in apply order, and their YAML."""

from __future__ import annotations

from manager.render.configmaps import mlflow_configmap, spec_configmap
from manager.render.context import RenderContext
from manager.render.data import shared_objects
from manager.render.eval import eval_job
from manager.render.grader import grader_deployment, grader_network_policy, grader_service
from manager.render.train import train_job, train_service
from valley.spec import RunSpec
from valley.vocabulary import SHARED_LABEL, label


def render_run(run: RunSpec, ctx: RenderContext) -> list[dict]:
    """Every object of one run, in apply order: the shared data Jobs it needs (identical for
    every run that needs them), then its own."""
    objects = [*shared_objects(run, ctx), spec_configmap(run, ctx)]
    if ctx.run_id is not None:
        objects.append(mlflow_configmap(run, ctx))
    if run.train is not None:
        if run.train.nodes > 1:
            objects.append(train_service(run, ctx))
        objects.append(train_job(run, ctx))
    if run.eval.isolation == "split":
        objects += [grader_network_policy(run, ctx), grader_service(run, ctx), grader_deployment(run, ctx)]
    objects.append(eval_job(run, ctx))
    return objects


def render_runs(runs: list[RunSpec], ctx: RenderContext) -> list[dict]:
    """Every object of `runs`, each shared one once (where it first appears)."""
    seen: set[tuple[str, str]] = set()
    objects = []
    for run in runs:
        for obj in render_run(run, ctx):
            key = (obj["kind"], obj["metadata"]["name"])
            if key not in seen:
                seen.add(key)
                objects.append(obj)
    return objects


def is_shared(obj: dict) -> bool:
    """A shared data object (serves several runs; no run label)."""
    return label(obj, SHARED_LABEL) is not None


def to_yaml(objects: list[dict]) -> str:
    """Multi-document YAML, keys in render order (deterministic: the functions are pure)."""
    import yaml

    class NoAliases(yaml.SafeDumper):
        """Shared sub-dicts (the proxy envFrom) are written out in full: manifests never use anchors."""

        def ignore_aliases(self, data: object) -> bool:
            return True

    return yaml.dump_all(objects, Dumper=NoAliases, sort_keys=False, default_flow_style=False, width=120)
