"""The eval Job: vLLM generation graded in gVisor (sidecar or split grader)."""

from __future__ import annotations

from manager.render.common import (
    GRADER_PORT,
    PVCS,
    SPEC_PATH,
    base_env,
    checkpoint_root,
    container,
    eval_model_dir,
    hf_env,
    job,
    lcb_path,
    mlflow_env,
    mounts,
    pod_spec,
    resources,
    spec_volumes,
)
from manager.render.context import RenderContext
from manager.render.grader import grader_name, grader_sidecar
from valley.spec import RunSpec


def eval_job(run: RunSpec, ctx: RenderContext) -> dict:
    """vLLM generation, graded in gVisor. `pod`: the whole pod under RuntimeClass gvisor
    with the grader as a native sidecar on localhost. `split`: vLLM on the default runtime,
    the grader in its own gVisor pods behind `<run>-grader`. Rendered suspended: opened
    when the train Job (for a baseline, the data Job) has succeeded."""
    split = run.eval.isolation == "split"
    grader_url = f"http://{grader_name(run)}:{GRADER_PORT}" if split else f"http://127.0.0.1:{GRADER_PORT}"
    command = [
        "valley", "eval", "--run-spec", SPEC_PATH, "--model", eval_model_dir(run),
        "--out", f"{checkpoint_root(run)}/eval", "--lcb-path", lcb_path(run), "--grader-url", grader_url,
    ]
    gpus = run.eval.gpus
    main = container(
        "eval", ctx.images["evaluator"], command, base_env() + hf_env() + mlflow_env(run, ctx),
        mounts(writable=("checkpoints", "datasets"), read_only=("models",), shm=True),
        resources(str(4 * gpus), f"{32 * gpus}Gi", gpus=gpus),
    )
    volumes = spec_volumes(run, tuple(PVCS), shm=f"{4 * gpus}Gi")
    extra_pod: dict = {}
    if not split:
        sidecar = grader_sidecar(ctx)
        extra_pod = {"runtimeClassName": sidecar["runtimeClassName"], "initContainers": [sidecar["sidecar"]]}
        volumes.append(sidecar["volume"])
    pod = pod_spec("valley-eval", [main], volumes, **extra_pod)
    return job(run, ctx, "eval", "eval", pod, suspend=True, backoff_limit=2, policy_container="eval")


