"""The shared data Jobs: fetch a student, stage a LiveCodeBench window, build an SFT subset.

Each is one stage of manager.layout that many runs need, rendered as a Job named by its content
(and, when its command reads a spec, a `<job>-input` ConfigMap holding `layout.shared_spec`), so
every run that needs it renders the identical objects: launch creates them once (the next run
finds them there), GitOps writes them once. CPU only; the subset build is gated on the fetch
(it tokenizes with the student's tokenizer). They are the only pods that download from the Hub.
An RQ2 subset's labels are graded by a grader sidecar, its pod under gVisor.
"""

from __future__ import annotations

from manager.layout import Stage, shared_spec
from manager.render.common import (
    GRADER_PORT,
    PROXY_ENV_FROM,
    base_env,
    batch_job,
    container,
    hf_env,
    mounts,
    pod_spec,
    pod_stages,
    resources,
    sized,
    stage_job_name,
    volumes,
)
from manager.render.context import RenderContext
from manager.render.grader import grader_sidecar
from valley.spec import RunSpec
from valley.vocabulary import STAGE_ANNOTATION, shared_labels

#: container name, resources (cpu, memory, cpu limit), writable and read-only volumes per stage
SHAPES = {
    "fetch": ("model-fetch", ("2", "8Gi", "4"), ("models", "datasets"), ()),
    "lcb": ("lcb-stage", ("1", "4Gi", "2"), ("datasets",), ()),
    "data": ("data-build", ("4", "16Gi", "8"), ("datasets",), ("models",)),
}


def shared_metadata(ctx: RenderContext, name: str, stage: Stage) -> dict:
    return {
        "name": name,
        "namespace": ctx.namespace,
        "labels": shared_labels(stage_job_name(stage.key), stage.kind),
        "annotations": {STAGE_ANNOTATION: stage.key},
    }


def input_configmap(stage: Stage, ctx: RenderContext) -> dict:
    """The spec a shared Job's command reads: only what its output depends on."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": shared_metadata(ctx, f"{stage_job_name(stage.key)}-input", stage),
        "data": {"run.json": shared_spec(stage).to_json()},
    }


def shared_job(stage: Stage, ctx: RenderContext) -> dict:
    name = stage_job_name(stage.key)
    container_name, (cpu, memory, cpu_limit), writable, read_only = SHAPES[stage.kind]
    reads_spec = "--run-spec" in stage.args
    main = container(
        container_name,
        ctx.images["trainer"],
        ["valley", *stage.args],
        base_env() + hf_env(),
        mounts(spec=reads_spec, writable=writable, read_only=read_only, hf_token=True),
        sized(ctx.profile.pods.data, resources(cpu, memory, cpu_limit=cpu_limit)),
        pull_policy=ctx.profile.image_pull_policy,
        envFrom=PROXY_ENV_FROM,
    )
    vols = volumes(f"{name}-input" if reads_spec else None, writable + read_only, hf_token=True)
    extra_pod: dict = {}
    if stage.kind == "data" and stage.run.data.subset in ("correct", "incorrect"):
        # RQ2 labels: graded programs run in the grader sidecar on localhost, so the whole pod runs
        # under gVisor and the programs mount no volume but their own scratch (never /datasets)
        sidecar = grader_sidecar(ctx, ctx.profile.gvisor_runtime_class)
        main["command"] += ["--grader-url", f"http://127.0.0.1:{GRADER_PORT}"]
        vols.append(sidecar["volume"])
        extra_pod = {"runtimeClassName": sidecar["runtimeClassName"], "initContainers": sidecar["init_containers"]}
    pod = pod_spec("valley-train", [main], vols, ctx.profile.pods.data, **extra_pod)
    return batch_job(
        shared_metadata(ctx, name, stage), shared_labels(name, stage.kind), ctx, pod, needs=stage.needs, backoff_limit=3
    )


def shared_objects(run: RunSpec, ctx: RenderContext) -> list[dict]:
    """The shared stages `run` needs: the student fetch, its LiveCodeBench window and (trained
    runs) its subset build, each with its input ConfigMap when it reads one."""
    objects = []
    for kind in ("fetch", "lcb", "data"):
        stage = pod_stages(run).get(kind)
        if stage is None:
            continue
        if "--run-spec" in stage.args:
            objects.append(input_configmap(stage, ctx))
        objects.append(shared_job(stage, ctx))
    return objects
