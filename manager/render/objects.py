"""One pure function per manifest kind of a run.

A run becomes: its spec ConfigMap, (once its MLflow run exists) an MLflow ConfigMap, a
data Job (model fetch + subset build), a train Job (plus a headless Service when it spans
nodes), and an eval Job (vLLM + grader; for isolation `split` the grader is its own
Deployment, Service and NetworkPolicy). Gated Jobs are rendered suspended; `valleyctl
reconcile` opens each gate when the Job it waits for has succeeded.
"""

from __future__ import annotations

from manager.render.context import RenderContext
from valley.spec import RunSpec
from valley.errors import CONFIG_ERROR_EXIT

SPEC_DIR = "/etc/valley"
SPEC_PATH = f"{SPEC_DIR}/run.json"
DATASETS, MODELS, CHECKPOINTS = "/datasets", "/models", "/checkpoints"
PVCS = {"datasets": "valley-datasets", "models": "valley-model-cache", "checkpoints": "valley-checkpoints"}
MOUNTS = {"datasets": DATASETS, "models": MODELS, "checkpoints": CHECKPOINTS}
GRADER_PORT = 8000
RDZV_PORT = 29500
UID = 1000
#: annotation holding a gated Job's Kueue queue; the reconciler turns it into the queue
#: label when the gate opens (Kueue would otherwise admit and unsuspend it too early)
QUEUE_ANNOTATION = "valley/queue"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


# ------------------------------------------------------------------------ names, paths


def job_name(run: RunSpec, stage: str) -> str:
    """`<run.name>-data|train|eval` (at most 63 characters: run names are at most 57)."""
    return f"{run.name}-{stage}"


def data_dir(run: RunSpec) -> str:
    assert run.data is not None
    return f"{DATASETS}/{run.subset_dir_name}"


def lcb_path(run: RunSpec) -> str:
    """The run's LiveCodeBench problems, staged by the data Job: eval pods have no Hub egress."""
    e = run.eval
    return f"{DATASETS}/lcb/{e.source}-{e.lcb_release}-{e.date_start}-{e.date_end}.jsonl"


def model_dir(run: RunSpec) -> str:
    return f"{MODELS}/{run.model.preset}"


def checkpoint_root(run: RunSpec) -> str:
    return f"{CHECKPOINTS}/{run.name}"


def eval_model_dir(run: RunSpec) -> str:
    """What the eval Job serves: the run's final checkpoint, or the untrained student."""
    return model_dir(run) if run.is_baseline else f"{CHECKPOINTS}/{run.checkpoint_dir}"


# --------------------------------------------------------------------- shared pieces


def labels(run: RunSpec, component: str) -> dict[str, str]:
    """Recommended `app.kubernetes.io/*` labels plus the `valley.*` ones the CLI selects on."""
    return {
        "app.kubernetes.io/name": "valley",
        "app.kubernetes.io/instance": run.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "valley",
        "app.kubernetes.io/managed-by": "valleyctl",
        "valley.run": run.name,
        "valley.study": run.study,
        "valley.rq": run.rq,
        "valley.spec-hash": run.spec_hash,
    }


def metadata(run: RunSpec, ctx: RenderContext, name: str, component: str, extra_labels: dict | None = None) -> dict:
    return {
        "name": name,
        "namespace": ctx.namespace,
        "labels": {**labels(run, component), **(extra_labels or {})},
        "annotations": {"valley/label": run.label},
    }


def pod_security() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
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
    """Requests and limits; GPUs go in both (the device plugin requires equal values).
    No CPU limit on GPU pods: throttling the data loader starves the GPUs."""
    requests = {"cpu": cpu, "memory": memory}
    limits = {"memory": memory}
    if cpu_limit:
        limits["cpu"] = cpu_limit
    if gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus)
    return {"requests": requests, "limits": limits}


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
    """Hub cache on the datasets volume; the token only by reference, and optional."""
    return [
        {"name": "HF_HOME", "value": f"{DATASETS}/hf-home"},
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "valley-hf", "key": "token", "optional": True}}},
    ]


def spec_volumes(run: RunSpec, claims: tuple[str, ...], *, shm: str | None = None) -> list[dict]:
    """The spec ConfigMap, a scratch /tmp, the shared volumes the pod mounts, /dev/shm."""
    vols = [
        {"name": "spec", "configMap": {"name": f"{run.name}-spec"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "16Gi"}},
        *({"name": key, "persistentVolumeClaim": {"claimName": PVCS[key]}} for key in PVCS if key in claims),
    ]
    if shm:
        vols.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}})
    return vols


def mounts(*, writable: tuple[str, ...] = (), read_only: tuple[str, ...] = (), shm: bool = False) -> list[dict]:
    result = [
        {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    result += [{"name": key, "mountPath": MOUNTS[key]} for key in writable]
    result += [{"name": key, "mountPath": MOUNTS[key], "readOnly": True} for key in read_only]
    if shm:
        result.append({"name": "dshm", "mountPath": "/dev/shm"})
    return result


def pod_spec(service_account: str, containers: list[dict], vols: list[dict], **extra: object) -> dict:
    return {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        **extra,
        "containers": containers,
        "volumes": vols,
    }


def failure_policy(container: str) -> dict:
    """Configuration errors fail the Job at once; node disruptions (preemption, drain)
    are retried without counting against backoffLimit."""
    return {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": container, "operator": "In", "values": [CONFIG_ERROR_EXIT]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }


def job(run: RunSpec, ctx: RenderContext, stage: str, component: str, pod: dict, *,
        suspend: bool, backoff_limit: int, policy_container: str | None, job_spec: dict | None = None,
        extra_labels: dict | None = None) -> dict:
    """A batch/v1 Job. A gated (suspended) Job carries its Kueue queue as an annotation,
    an open one as the label Kueue admits on."""
    meta = metadata(run, ctx, job_name(run, stage), component, extra_labels)
    if ctx.queue:
        if suspend:
            meta["annotations"][QUEUE_ANNOTATION] = ctx.queue
        else:
            meta["labels"][QUEUE_LABEL] = ctx.queue
    spec: dict = {"suspend": suspend, "backoffLimit": backoff_limit, **(job_spec or {})}
    if policy_container:
        spec["podFailurePolicy"] = failure_policy(policy_container)
    spec["template"] = {
        "metadata": {"labels": {**labels(run, component), **(extra_labels or {})}},
        "spec": {"restartPolicy": "Never", **pod},
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def container(name: str, image: str, command: list[str], env: list[dict], volume_mounts: list[dict],
              res: dict, **extra: object) -> dict:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": env,
        **extra,
        "resources": res,
        "securityContext": container_security(),
        "volumeMounts": volume_mounts,
    }


# ------------------------------------------------------------------------ ConfigMaps


def spec_configmap(run: RunSpec, ctx: RenderContext) -> dict:
    """The RunSpec every pod reads (`--run-spec /etc/valley/run.json`)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(run, ctx, f"{run.name}-spec", "config"),
        "data": {"run.json": run.to_json()},
    }


def mlflow_configmap(run: RunSpec, ctx: RenderContext) -> dict:
    """The pre-created MLflow run the pods attach to."""
    assert ctx.run_id is not None, "mlflow_configmap needs ctx.run_id"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(run, ctx, f"{run.name}-mlflow", "config"),
        "data": {"run_id": ctx.run_id, "tracking_uri": ctx.tracking_uri},
    }


# ------------------------------------------------------------------------------ data


def data_job(run: RunSpec, ctx: RenderContext) -> dict:
    """Fetch the student (resumable; a complete cache dir is reused) and stage the run's
    LiveCodeBench problems, then build the run's SFT subset with the student's tokenizer.
    Baselines only fetch and stage. CPU only, never gated."""
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
    pod = pod_spec("valley-train", containers, spec_volumes(run, ("datasets", "models")), **({"initContainers": init} if init else {}))
    return job(run, ctx, "data", "data", pod, suspend=False, backoff_limit=3, policy_container=containers[0]["name"])


# ----------------------------------------------------------------------------- train


def train_service_name(run: RunSpec) -> str:
    return job_name(run, "train")


def train_service(run: RunSpec, ctx: RenderContext) -> dict:
    """Headless Service giving each indexed train pod a DNS name for c10d rendezvous."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(run, ctx, train_service_name(run), "train"),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {"valley.run": run.name, "app.kubernetes.io/component": "train"},
            "ports": [{"name": "rdzv", "port": RDZV_PORT, "targetPort": RDZV_PORT}],
        },
    }


def train_command(run: RunSpec) -> list[str]:
    command = [
        "valley", "train", "--run-spec", SPEC_PATH, "--data", data_dir(run), "--model", model_dir(run),
        "--out", checkpoint_root(run),
    ]
    if run.base is not None:
        command += ["--base-checkpoint", f"{CHECKPOINTS}/{run.base.checkpoint_dir}"]
    return command


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
            {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
            {"name": "PET_RDZV_BACKEND", "value": "c10d"},
            {"name": "PET_RDZV_ENDPOINT", "value": f"{head}:{RDZV_PORT}"},
            {"name": "PET_RDZV_ID", "value": run.name},
            {"name": "TORCH_DIST_INIT_BARRIER", "value": "1"},
        ]
    return env


def train_job(run: RunSpec, ctx: RenderContext) -> dict:
    """torchtune full fine-tune on nodes x GPUs, rendered suspended: the reconciler opens it
    when the data Job (and, for a continued run, the base run's train Job) has succeeded."""
    assert run.train is not None, "baselines have no train Job"
    train = run.train
    gpus = train.gpus_per_node
    main = container(
        "train", ctx.images["trainer"], train_command(run),
        base_env() + torchrun_env(run) + mlflow_env(run, ctx),
        mounts(writable=("checkpoints",), read_only=("datasets", "models"), shm=True),
        resources(str(6 * gpus), f"{60 * gpus}Gi", gpus=gpus),
        ports=[{"name": "rdzv", "containerPort": RDZV_PORT}], envFrom=PROXY_ENV_FROM,
    )
    extra_pod: dict = {}
    job_spec: dict = {}
    if train.nodes > 1:
        extra_pod["subdomain"] = train_service_name(run)
        job_spec = {"completionMode": "Indexed", "completions": train.nodes, "parallelism": train.nodes}
    pod = pod_spec("valley-train", [main], spec_volumes(run, tuple(PVCS), shm=f"{8 * gpus}Gi"), **extra_pod)
    extra_labels = {"valley.base-run": run.base.name} if run.base else None
    return job(run, ctx, "train", "train", pod, suspend=True, backoff_limit=2, policy_container="train",
               job_spec=job_spec, extra_labels=extra_labels)


# ------------------------------------------------------------------------------ eval


def grader_name(run: RunSpec) -> str:
    return f"{run.name}-grader"


def grader_container(ctx: RenderContext, host: str, **extra: object) -> dict:
    probe = {"tcpSocket": {"port": GRADER_PORT}, "periodSeconds": 2}
    return container(
        "grader", ctx.images["grader"],
        ["python", "-m", "valley.grader", "serve", "--host", host, "--port", str(GRADER_PORT)],
        [{"name": "HOME", "value": "/tmp"}], [{"name": "tmp", "mountPath": "/tmp"}],
        resources("4", "8Gi", cpu_limit="8"),
        ports=[{"name": "grader", "containerPort": GRADER_PORT}],
        startupProbe={**probe, "failureThreshold": 60}, readinessProbe=probe, **extra,
    )


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
    extra_pod: dict = {}
    if not split:
        extra_pod = {"runtimeClassName": "gvisor", "initContainers": [grader_container(ctx, "127.0.0.1", restartPolicy="Always")]}
    pod = pod_spec("valley-eval", [main], spec_volumes(run, tuple(PVCS), shm=f"{4 * gpus}Gi"), **extra_pod)
    return job(run, ctx, "eval", "eval", pod, suspend=True, backoff_limit=2, policy_container="eval")


def grader_deployment(run: RunSpec, ctx: RenderContext) -> dict:
    """isolation `split`: the grader in its own gVisor pods (no GPU, no token, no egress)."""
    pod_labels = labels(run, "grader")
    pod = pod_spec("valley-grader", [grader_container(ctx, "0.0.0.0")], [{"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}}],
                   runtimeClassName="gvisor")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(run, ctx, grader_name(run), "grader"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"valley.run": run.name, "app.kubernetes.io/component": "grader"}},
            "template": {"metadata": {"labels": pod_labels}, "spec": pod},
        },
    }


def grader_service(run: RunSpec, ctx: RenderContext) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(run, ctx, grader_name(run), "grader"),
        "spec": {
            "selector": {"valley.run": run.name, "app.kubernetes.io/component": "grader"},
            "ports": [{"name": "grader", "port": GRADER_PORT, "targetPort": GRADER_PORT}],
        },
    }


def grader_network_policy(run: RunSpec, ctx: RenderContext) -> dict:
    """Only this run's eval pod may reach its graders; graders reach nothing."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(run, ctx, grader_name(run), "grader"),
        "spec": {
            "podSelector": {"matchLabels": {"valley.run": run.name, "app.kubernetes.io/component": "grader"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": {"valley.run": run.name, "app.kubernetes.io/component": "eval"}}}],
                "ports": [{"protocol": "TCP", "port": GRADER_PORT}],
            }],
            "egress": [],
        },
    }


# ------------------------------------------------------------------------------- run


def render_run(run: RunSpec, ctx: RenderContext) -> list[dict]:
    """Every object of one run, in apply order."""
    objects = [spec_configmap(run, ctx)]
    if ctx.run_id is not None:
        objects.append(mlflow_configmap(run, ctx))
    objects.append(data_job(run, ctx))
    if run.train is not None:
        if run.train.nodes > 1:
            objects.append(train_service(run, ctx))
        objects.append(train_job(run, ctx))
    if run.eval.isolation == "split":
        objects += [grader_network_policy(run, ctx), grader_service(run, ctx), grader_deployment(run, ctx)]
    objects.append(eval_job(run, ctx))
    return objects


def to_yaml(objects: list[dict]) -> str:
    """Multi-document YAML, keys in render order (deterministic: the functions are pure)."""
    import yaml

    class NoAliases(yaml.SafeDumper):
        """Shared sub-dicts (the proxy envFrom) are written out in full: manifests never use anchors."""

        def ignore_aliases(self, data: object) -> bool:
            return True

    return yaml.dump_all(objects, Dumper=NoAliases, sort_keys=False, default_flow_style=False, width=120)
