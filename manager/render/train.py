"""The torchtune train Job, and the headless Service multi-node runs rendezvous through."""

from __future__ import annotations

from manager.render.common import (
    PVCS,
    RDZV_PORT,
    base_env,
    container,
    job,
    job_name,
    mlflow_env,
    mounts,
    offline_env,
    pod_spec,
    pod_stages,
    resources,
    service,
    sized,
    volumes,
)
from manager.render.context import RenderContext
from valley.spec import RunSpec
from valley.vocabulary import BASE_RUN_LABEL


def train_service_name(run: RunSpec) -> str:
    return job_name(run, "train")


def train_service(run: RunSpec, ctx: RenderContext) -> dict:
    """Headless Service giving each indexed train pod a DNS name for c10d rendezvous."""
    return service(
        run, ctx, train_service_name(run), "train", "rdzv", RDZV_PORT, clusterIP="None", publishNotReadyAddresses=True
    )


def train_command(run: RunSpec) -> list[str]:
    return ["valley", *pod_stages(run)["train"].args]


def torchrun_env(run: RunSpec) -> list[dict]:
    """torchrun (hence `tune run`) reads PET_* as its flags' defaults. Multi-node pods find
    rank 0 through the headless Service and take their rank from the completion index."""
    assert run.train is not None
    env = [
        {"name": "PET_NNODES", "value": str(run.train.nodes)},
        {"name": "PET_NPROC_PER_NODE", "value": str(run.train.gpus_per_node)},
    ]
    if run.train.nodes > 1:
        head = f"{job_name(run, 'train')}-0.{train_service_name(run)}"
        env += [
            {
                "name": "PET_NODE_RANK",
                "valueFrom": {
                    "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
                },
            },
            {"name": "PET_RDZV_BACKEND", "value": "c10d"},
            {"name": "PET_RDZV_ENDPOINT", "value": f"{head}:{RDZV_PORT}"},
            {"name": "PET_RDZV_ID", "value": run.name},
            {"name": "TORCH_DIST_INIT_BARRIER", "value": "1"},
        ]
    return env


def train_job(run: RunSpec, ctx: RenderContext) -> dict:
    """torchtune full fine-tune on nodes x GPUs, rendered suspended: the reconciler opens it
    when the student's fetch and the subset build (and, for a continued run, the base run's
    train Job) have succeeded."""
    assert run.train is not None, "baselines have no train Job"
    train = run.train
    gpus = train.gpus_per_node
    main = container(
        "train",
        ctx.images["trainer"],
        train_command(run),
        base_env() + offline_env() + torchrun_env(run) + mlflow_env(run, ctx),
        mounts(writable=("checkpoints",), read_only=("datasets", "models"), shm=True),
        sized(ctx.profile.pods.train, resources(str(6 * gpus), f"{60 * gpus}Gi", gpus=gpus)),
        pull_policy=ctx.profile.image_pull_policy,
        ports=[{"name": "rdzv", "containerPort": RDZV_PORT}],
    )
    extra_pod: dict = {}
    job_spec: dict = {}
    if train.nodes > 1:
        extra_pod["subdomain"] = train_service_name(run)
        job_spec = {"completionMode": "Indexed", "completions": train.nodes, "parallelism": train.nodes}
    pod = pod_spec(
        "valley-train",
        [main],
        volumes(f"{run.name}-spec", tuple(PVCS), shm=f"{8 * gpus}Gi"),
        ctx.profile.pods.train,
        **extra_pod,
    )
    extra_labels = {BASE_RUN_LABEL: run.base.name} if run.base else None
    return job(
        run,
        ctx,
        "train",
        pod,
        needs=pod_stages(run)["train"].needs,
        backoff_limit=2,
        job_spec=job_spec,
        extra_labels=extra_labels,
    )
