"""The eval Job: vLLM generation graded in gVisor (sidecar or split grader)."""

from __future__ import annotations

from manager.render.common import (
    GRADER_PORT,
    PVCS,
    base_env,
    container,
    job,
    mlflow_env,
    mounts,
    offline_env,
    pod_spec,
    pod_stages,
    resources,
    sized,
    volumes,
)
from manager.render.context import RenderContext
from manager.render.grader import grader_name, grader_sidecar
from valley.spec import RunSpec


def eval_job(run: RunSpec, ctx: RenderContext) -> dict:
    """vLLM generation, graded in gVisor. `split` (default): vLLM on the default runtime, the
    grader in its own gVisor pods behind `<run>-grader`. `pod`: the whole pod under gVisor with
    nvproxy (the profile's GPU RuntimeClass), the grader a native sidecar on localhost with its
    own scratch volume. Rendered suspended: opened when the train Job (for a baseline, the
    student's fetch) and the LiveCodeBench staging have succeeded."""
    split = run.eval.isolation == "split"
    grader_url = f"http://{grader_name(run)}:{GRADER_PORT}" if split else f"http://127.0.0.1:{GRADER_PORT}"
    stage = pod_stages(run)["eval"]
    command = ["valley", *stage.args, "--grader-url", grader_url]
    gpus = run.eval.gpus
    main = container(
        "eval",
        ctx.images["evaluator"],
        command,
        base_env() + offline_env() + mlflow_env(run, ctx),
        mounts(writable=("checkpoints", "datasets"), read_only=("models",), shm=True),
        sized(ctx.profile.pods.eval, resources(str(4 * gpus), f"{32 * gpus}Gi", gpus=gpus)),
        pull_policy=ctx.profile.image_pull_policy,
    )
    vols = volumes(f"{run.name}-spec", tuple(PVCS), shm=f"{4 * gpus}Gi")
    extra_pod: dict = {}
    if not split:
        sidecar = grader_sidecar(ctx, ctx.profile.gvisor_gpu_runtime_class)
        extra_pod = {"runtimeClassName": sidecar["runtimeClassName"], "initContainers": sidecar["init_containers"]}
        vols.append(sidecar["volume"])
    pod = pod_spec("valley-eval", [main], vols, ctx.profile.pods.eval, **extra_pod)
    return job(run, ctx, "eval", pod, needs=stage.needs, backoff_limit=2)
