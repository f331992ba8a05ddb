"""Names, paths and the hardened pieces every manifest of a run is built from."""

from __future__ import annotations

import re

from manager.layout import POD_PATHS, SHARED, Stage, content_hash, run_stages
from manager.profile import PodPlacement
from manager.render.context import RenderContext
from valley.errors import CONFIG_ERROR_EXIT
from valley.spec import RunSpec
from valley.vocabulary import (
    LABEL_ANNOTATION,
    NEEDS_ANNOTATION,
    QUEUE_ANNOTATION,
    QUEUE_LABEL,
    run_component,
    run_labels,
)

SPEC_DIR = "/etc/valley"
SPEC_PATH = f"{SPEC_DIR}/run.json"
PVCS = {"datasets": "valley-datasets", "models": "valley-model-cache", "checkpoints": "valley-checkpoints"}
#: where each volume is mounted: manager.layout.POD_PATHS's roots
MOUNTS = {"datasets": POD_PATHS.datasets, "models": POD_PATHS.models, "checkpoints": POD_PATHS.checkpoints}
_DNS = re.compile(r"[^a-z0-9-]+")
#: how the names of shared data Jobs start (stage_job_name)
SHARED_JOB_PREFIXES = tuple(f"valley-{kind}-" for kind in SHARED)
GRADER_PORT = 8000
RDZV_PORT = 29500
#: the images' `valley` user (images/*/Dockerfile); >= 10000 so it never maps to a host user
UID = 10001
#: the optional Hub token, mounted as a file (never an env var) where downloads happen
HF_SECRET, HF_TOKEN_DIR = "valley-hf", "/var/run/secrets/valley-hf"


# ------------------------------------------------------------------------ names, paths


def job_name(run: RunSpec, stage: str) -> str:
    """`<run.name>-train|eval` (at most 63 characters: run names are at most 57)."""
    return f"{run.name}-{stage}"


def pod_stages(run: RunSpec) -> dict[str, Stage]:
    """The run's stages (manager.layout) as pods run them: volumes at POD_PATHS, the spec at SPEC_PATH."""
    return {stage.kind: stage for stage in run_stages(run, POD_PATHS, SPEC_PATH)}


def stage_job_name(key: str) -> str:
    """The Job that runs a stage of manager.layout: `<run>-train|eval` for a run's own stages,
    a content name (`valley-fetch-qwen-…`, `valley-data-…`, `valley-lcb-…`) for shared ones, with
    room for the `-input` ConfigMap beside it."""
    kind, what = key.split(":", 1)
    if kind in ("train", "eval"):
        return f"{what}-{kind}"
    prefix = f"valley-{kind}-"
    slug = _DNS.sub("-", what.lower()).strip("-")[: 57 - len(prefix) - 9].rstrip("-")
    return f"{prefix}{slug}-{content_hash(key)}"


# --------------------------------------------------------------------- shared pieces


def metadata(run: RunSpec, ctx: RenderContext, name: str, component: str, extra_labels: dict | None = None) -> dict:
    return {
        "name": name,
        "namespace": ctx.namespace,
        "labels": {**run_labels(run, component), **(extra_labels or {})},
        "annotations": {LABEL_ANNOTATION: run.label},
    }


def service(
    run: RunSpec, ctx: RenderContext, name: str, component: str, port_name: str, port: int, **spec: object
) -> dict:
    """A Service in front of this run's pods of one component."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(run, ctx, name, component),
        "spec": {
            **spec,
            "selector": run_component(run.name, component),
            "ports": [{"name": port_name, "port": port, "targetPort": port}],
        },
    }


def pod_security() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        # the volumes hold terabytes: chown them only when their root is not ours yet
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def resources(cpu: str, memory: str, *, gpus: int = 0, cpu_limit: str | None = None) -> dict:
    """Requests and limits; GPUs go in both (the device plugin requires equal values). GPU pods
    get CPU limit = request: Guaranteed QoS, so a static CPU manager gives them whole cores
    instead of throttling their data loaders against neighbours."""
    requests = {"cpu": cpu, "memory": memory}
    limits = {"cpu": cpu_limit or cpu, "memory": memory}
    if gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus)
    return {"requests": requests, "limits": limits}


def sized(placement: PodPlacement, default: dict) -> dict:
    """The cluster profile's requests and limits for this kind of pod, else what render sizes."""
    return placement.resources.to_k8s() if placement.resources else default


def mlflow_env(run: RunSpec, ctx: RenderContext) -> list[dict]:
    """MLFLOW_* from values: the URI is not secret; the run id comes from `<run>-mlflow`,
    which exists once the MLflow run does (pods wait for it rather than log elsewhere)."""
    return [
        {"name": "MLFLOW_TRACKING_URI", "value": ctx.tracking_uri},
        {"name": "MLFLOW_RUN_ID", "valueFrom": {"configMapKeyRef": {"name": f"{run.name}-mlflow", "key": "run_id"}}},
    ]


#: proxy settings for Hub downloads (k8s/components/model-proxy); absent = direct egress
PROXY_ENV_FROM = [{"configMapRef": {"name": "valley-model-proxy", "optional": True}}]


def base_env() -> list[dict]:
    """A writable HOME on the emptyDir /tmp (the root filesystem is read-only)."""
    return [{"name": "HOME", "value": "/tmp"}, {"name": "VALLEY_IN_CLUSTER", "value": "1"}]


def hf_env() -> list[dict]:
    """For containers that download: the Hub cache on the datasets volume, and the token read
    from its mounted file (huggingface_hub reads HF_TOKEN_PATH; absent file = anonymous)."""
    return [
        {"name": "HF_HOME", "value": f"{POD_PATHS.datasets}/hf-home"},
        {"name": "HF_TOKEN_PATH", "value": f"{HF_TOKEN_DIR}/token"},
    ]


def offline_env() -> list[dict]:
    """For containers that never download: fail at once instead of waiting on denied egress."""
    return [{"name": "HF_HUB_OFFLINE", "value": "1"}]


def hf_token_volume() -> dict:
    return {"name": "hf-token", "secret": {"secretName": HF_SECRET, "optional": True, "defaultMode": 0o440}}


def hf_token_mount() -> dict:
    return {"name": "hf-token", "mountPath": HF_TOKEN_DIR, "readOnly": True}


def volumes(
    spec_configmap: str | None, claims: tuple[str, ...], *, shm: str | None = None, hf_token: bool = False
) -> list[dict]:
    """The spec ConfigMap (when the command reads one), a scratch /tmp, the shared volumes the
    pod mounts, /dev/shm, the Hub token."""
    vols = [{"name": "spec", "configMap": {"name": spec_configmap}}] if spec_configmap else []
    vols += [
        {"name": "tmp", "emptyDir": {"sizeLimit": "16Gi"}},
        *({"name": key, "persistentVolumeClaim": {"claimName": PVCS[key]}} for key in PVCS if key in claims),
    ]
    if shm:
        vols.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}})
    if hf_token:
        vols.append(hf_token_volume())
    return vols


def mounts(
    *,
    spec: bool = True,
    writable: tuple[str, ...] = (),
    read_only: tuple[str, ...] = (),
    shm: bool = False,
    hf_token: bool = False,
) -> list[dict]:
    result = [{"name": "spec", "mountPath": SPEC_DIR, "readOnly": True}] if spec else []
    result.append({"name": "tmp", "mountPath": "/tmp"})
    result += [{"name": key, "mountPath": MOUNTS[key]} for key in writable]
    result += [{"name": key, "mountPath": MOUNTS[key], "readOnly": True} for key in read_only]
    if shm:
        result.append({"name": "dshm", "mountPath": "/dev/shm"})
    if hf_token:
        result.append(hf_token_mount())
    return result


def pod_spec(
    service_account: str, containers: list[dict], vols: list[dict], placement: PodPlacement, **extra: object
) -> dict:
    """A hardened PodSpec; `placement` (the cluster profile's, per pod kind) adds node
    selection, tolerations, priority and any other field the cluster needs."""
    return {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        **extra,
        **placement.pod_fields(),
        "containers": containers,
        "volumes": vols,
    }


def failure_policy(pod: dict) -> dict:
    """Configuration errors (exit 3) in any container that runs to completion (the workload, the
    grader's isolation check) fail the Job at once; node disruptions (preemption, drain) are
    retried without counting against backoffLimit. The grader sidecar itself is restarted by the
    kubelet, so its exit never reaches this policy: its check container stands for it."""
    workloads = [
        c["name"] for c in pod.get("initContainers", []) + pod["containers"] if c.get("restartPolicy") != "Always"
    ]
    return {
        "rules": [
            *(
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": name, "operator": "In", "values": [CONFIG_ERROR_EXIT]},
                }
                for name in workloads
            ),
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }


def job(
    run: RunSpec,
    ctx: RenderContext,
    stage: str,
    pod: dict,
    *,
    needs: tuple[str, ...],
    backoff_limit: int,
    job_spec: dict | None = None,
    extra_labels: dict | None = None,
) -> dict:
    """One of a run's own Jobs (`<run>-train|eval`), gated on the stages it needs."""
    meta = metadata(run, ctx, job_name(run, stage), stage, extra_labels)
    return batch_job(
        meta,
        {**run_labels(run, stage), **(extra_labels or {})},
        ctx,
        pod,
        needs=needs,
        backoff_limit=backoff_limit,
        job_spec=job_spec,
    )


def batch_job(
    meta: dict,
    pod_labels: dict,
    ctx: RenderContext,
    pod: dict,
    *,
    needs: tuple[str, ...],
    backoff_limit: int,
    job_spec: dict | None = None,
) -> dict:
    """A batch/v1 Job; with `needs` (stage keys) it is rendered suspended and names the Jobs
    the reconciler waits for. A gated Job carries its Kueue queue as an annotation, an open one
    as the label Kueue admits on."""
    suspend = bool(needs)
    if suspend:
        meta["annotations"][NEEDS_ANNOTATION] = ",".join(stage_job_name(key) for key in needs)
    if ctx.queue:
        if suspend:
            meta["annotations"][QUEUE_ANNOTATION] = ctx.queue
        else:
            meta["labels"][QUEUE_LABEL] = ctx.queue
    spec: dict = {
        "suspend": suspend,
        "backoffLimit": backoff_limit,
        **(job_spec or {}),
        "podFailurePolicy": failure_policy(pod),
    }
    spec["template"] = {"metadata": {"labels": pod_labels}, "spec": {"restartPolicy": "Never", **pod}}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def container(
    name: str,
    image: str,
    command: list[str],
    env: list[dict],
    volume_mounts: list[dict],
    res: dict,
    *,
    pull_policy: str,
    **extra: object,
) -> dict:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": command,
        "env": env,
        **extra,
        "resources": res,
        "securityContext": container_security(),
        "volumeMounts": volume_mounts,
    }
