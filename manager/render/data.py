"""The data Job: fetch the student, stage LiveCodeBench, build the run's SFT subset."""

from __future__ import annotations

from manager.render.common import (
    GRADER_PORT,
    PROXY_ENV_FROM,
    SPEC_PATH,
    base_env,
    container,
    data_dir,
    hf_env,
    job,
    lcb_path,
    mlflow_env,
    model_dir,
    mounts,
    pod_spec,
    resources,
    spec_volumes,
)
from manager.render.context import RenderContext
from manager.render.grader import grader_sidecar
from valley.spec import RunSpec


def data_job(run: RunSpec, ctx: RenderContext) -> dict:
    """Fetch the student (resumable; a complete cache dir is reused) and stage the run's
    LiveCodeBench problems, then build the run's SFT subset with the student's tokenizer.
    Baselines only fetch and stage. CPU only, never gated. A subset's RQ2 labels are graded
    by the grader sidecar on localhost, so the whole pod runs under gVisor and the graded
    programs, in the sidecar, mount no volume but their own scratch (never /datasets)."""
    image = ctx.images["trainer"]
    env = base_env() + hf_env() + mlflow_env(run, ctx)
    fetch = container(
        "model-fetch", image, ["valley", "model", "fetch", "--preset", run.model.preset, "--out", model_dir(run)],
        base_env() + hf_env(), mounts(writable=("models", "datasets")), resources("2", "8Gi", cpu_limit="4"),
        envFrom=PROXY_ENV_FROM,
    )
    stage_lcb = container(
        "lcb-stage", image, ["valley", "data", "lcb", "--run-spec", SPEC_PATH, "--out", lcb_path(run)],
        base_env() + hf_env(), mounts(writable=("datasets",)), resources("1", "4Gi", cpu_limit="2"),
        envFrom=PROXY_ENV_FROM,
    )
    volumes = spec_volumes(run, ("datasets", "models"))
    extra_pod: dict = {}
    if run.data is None:
        containers, init = [stage_lcb], [fetch]
    else:
        build = container(
            "data-build", image,
            ["valley", "data", "build", "--run-spec", SPEC_PATH, "--tokenizer", model_dir(run), "--out", data_dir(run)],
            env, mounts(writable=("datasets",), read_only=("models",)), resources("4", "16Gi", cpu_limit="8"),
            envFrom=PROXY_ENV_FROM,
        )
        containers, init = [build], [fetch, stage_lcb]
        if run.data.subset in ("correct", "incorrect"):  # RQ2 labels: graded programs
            sidecar = grader_sidecar(ctx)
            build["command"] += ["--grader-url", f"http://127.0.0.1:{GRADER_PORT}"]
            init.append(sidecar["sidecar"])
            volumes.append(sidecar["volume"])
            extra_pod["runtimeClassName"] = sidecar["runtimeClassName"]
    pod = pod_spec("valley-train", containers, volumes, initContainers=init, **extra_pod)
    return job(run, ctx, "data", "data", pod, suspend=False, backoff_limit=3, policy_container=containers[0]["name"])
