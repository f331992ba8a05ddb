"""The data Job: fetch the student, stage LiveCodeBench, build the run's SFT subset."""

from __future__ import annotations

from manager.render.common import (
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
from valley.spec import RunSpec


def data_job(run: RunSpec, ctx: RenderContext) -> dict:
    """Fetch the student (resumable; a complete cache dir is reused) and stage the run's
    LiveCodeBench problems, then build the run's SFT subset with the student's tokenizer.
    Baselines only fetch and stage. CPU only, never gated."""
    image = ctx.images["trainer"]
    env = base_env() + hf_env() + mlflow_env(run, ctx)
    fetch = container(
        "model-fetch", image, ["valley", "model", "fetch", "--preset", run.model.preset, "--out", model_dir(run)],
        base_env() + hf_env(), mounts(writable=("models", "datasets"), hf_token=True), resources("2", "8Gi", cpu_limit="4"),
        envFrom=PROXY_ENV_FROM,
    )
    stage_lcb = container(
        "lcb-stage", image, ["valley", "data", "lcb", "--run-spec", SPEC_PATH, "--out", lcb_path(run)],
        base_env() + hf_env(), mounts(writable=("datasets",), hf_token=True), resources("1", "4Gi", cpu_limit="2"),
        envFrom=PROXY_ENV_FROM,
    )
    if run.data is None:
        containers, init = [stage_lcb], [fetch]
    else:
        build = container(
            "data-build", image,
            ["valley", "data", "build", "--run-spec", SPEC_PATH, "--tokenizer", model_dir(run), "--out", data_dir(run)],
            env, mounts(writable=("datasets",), read_only=("models",), hf_token=True), resources("4", "16Gi", cpu_limit="8"),
            envFrom=PROXY_ENV_FROM,
        )
        containers, init = [build], [fetch, stage_lcb]
    pod = pod_spec("valley-train", containers, spec_volumes(run, ("datasets", "models"), hf_token=True), ctx.profile.pods.data,
                   initContainers=init)
    return job(run, ctx, "data", "data", pod, suspend=False, backoff_limit=3)
