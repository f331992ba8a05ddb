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
    offline_env,
    job,
    lcb_path,
    mlflow_env,
    mounts,
    pod_spec,
    resources,
    spec_volumes,
)
from manager.render.context import RenderContext
from manager.render.grader import grader_container, grader_name
from valley.spec import RunSpec


def eval_job(run: RunSpec, ctx: RenderContext) -> dict:
    """vLLM generation, graded in gVisor. `split` (default): vLLM on the default runtime, the
    grader in its own gVisor pods behind `<run>-grader`. `pod`: the whole pod under gVisor with
    nvproxy (the profile's GPU RuntimeClass), the grader a native sidecar on localhost with its
    own scratch volume. Rendered suspended: opened when the train Job (for a baseline, the
    data Job) has succeeded."""
    split = run.eval.isolation == "split"
    grader_url = f"http://{grader_name(run)}:{GRADER_PORT}" if split else f"http://127.0.0.1:{GRADER_PORT}"
    command = [
        "valley", "eval", "--run-spec", SPEC_PATH, "--model", eval_model_dir(run),
        "--out", f"{checkpoint_root(run)}/eval", "--lcb-path", lcb_path(run), "--grader-url", grader_url,
    ]
    gpus = run.eval.gpus
    main = container(
        "eval", ctx.images["evaluator"], command, base_env() + offline_env() + mlflow_env(run, ctx),
        mounts(writable=("checkpoints", "datasets"), read_only=("models",), shm=True),
        resources(str(4 * gpus), f"{32 * gpus}Gi", gpus=gpus),
    )
    extra_pod: dict = {}
    if not split:
        extra_pod = {"runtimeClassName": ctx.profile.gvisor_gpu_runtime_class,
                     "initContainers": [grader_container(ctx, "127.0.0.1", scratch="grader-tmp", restartPolicy="Always")]}
    vols = spec_volumes(run, tuple(PVCS), shm=f"{4 * gpus}Gi")
    if not split:
        vols.append({"name": "grader-tmp", "emptyDir": {"sizeLimit": "4Gi"}})
    pod = pod_spec("valley-eval", [main], vols, ctx.profile.pods.eval, **extra_pod)
    return job(run, ctx, "eval", "eval", pod, suspend=True, backoff_limit=2)


