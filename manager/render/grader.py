"""The grader container, and for isolation `split` its gVisor Deployment, Service and NetworkPolicy."""

from __future__ import annotations

from manager.render.common import (
    GRADER_PORT,
    container,
    metadata,
    pod_spec,
    resources,
    service,
    sized,
)
from manager.render.context import RenderContext
from valley.spec import RunSpec
from valley.vocabulary import GRADER_COMPONENT, run_component, run_labels


def grader_name(run: RunSpec) -> str:
    return f"{run.name}-grader"


#: the grader's own /tmp: graded programs never share a volume with the pod's other containers
GRADER_TMP = {"name": "grader-tmp", "emptyDir": {"sizeLimit": "4Gi"}}


#: a sidecar's grader listens on the pod's loopback only
LOOPBACK = "127.0.0.1"


def grader_probe(host: str) -> dict:
    """A kubelet dials tcpSocket and httpGet probes at the pod's IP, which a grader on loopback
    never answers: that one is asked from inside its container (python starts slowly in gVisor)."""
    if host != LOOPBACK:
        return {"tcpSocket": {"port": GRADER_PORT}, "periodSeconds": 2}
    connect = f"import socket; socket.create_connection(('{LOOPBACK}', {GRADER_PORT}), 5).close()"
    return {"exec": {"command": ["python", "-c", connect]}, "periodSeconds": 2, "timeoutSeconds": 10}


def grader_container(ctx: RenderContext, host: str, **extra: object) -> dict:
    """The grader under the pod's gVisor runtime (`--sandbox in-gvisor`: it refuses to start
    anywhere else), mounting nothing but its own scratch volume."""
    probe = grader_probe(host)
    return container(
        "grader",
        ctx.images["grader"],
        [
            "python",
            "-m",
            "valley.grader",
            "serve",
            "--host",
            host,
            "--port",
            str(GRADER_PORT),
            "--sandbox",
            "in-gvisor",
        ],
        [{"name": "HOME", "value": "/tmp"}],
        [{"name": GRADER_TMP["name"], "mountPath": "/tmp"}],
        sized(ctx.profile.pods.grader, resources("4", "8Gi", cpu_limit="8")),
        pull_policy=ctx.profile.image_pull_policy,
        ports=[{"name": "grader", "containerPort": GRADER_PORT}],
        startupProbe={**probe, "failureThreshold": 60},
        readinessProbe=probe,
        livenessProbe={**probe, "periodSeconds": 10, "failureThreshold": 6},
        **extra,
    )


def grader_check(ctx: RenderContext) -> dict:
    """`valley.grader check --sandbox in-gvisor` as an ordinary init container ahead of the
    sidecar: a refused isolation exits 3 here, where the Job's podFailurePolicy sees it and fails
    the Job at once (the restartable sidecar's own exit 3 would only restart it, for ever)."""
    return container(
        "grader-check",
        ctx.images["grader"],
        ["python", "-m", "valley.grader", "check", "--sandbox", "in-gvisor"],
        [{"name": "HOME", "value": "/tmp"}],
        [{"name": GRADER_TMP["name"], "mountPath": "/tmp"}],
        resources("100m", "256Mi"),
        pull_policy=ctx.profile.image_pull_policy,
    )


def grader_sidecar(ctx: RenderContext, runtime_class: str) -> dict:
    """What a pod adds to grade on localhost: the grader as a native sidecar after its isolation
    check (`init_containers`, in order), its volume, and gVisor (`runtime_class`: the profile's,
    with nvproxy when the pod has GPUs) for the whole pod."""
    return {
        "runtimeClassName": runtime_class,
        "init_containers": [grader_check(ctx), grader_container(ctx, LOOPBACK, restartPolicy="Always")],
        "volume": GRADER_TMP,
    }


def grader_deployment(run: RunSpec, ctx: RenderContext) -> dict:
    """isolation `split`: the grader in its own gVisor pods (no GPU, no token, no egress)."""
    pod_labels = run_labels(run, GRADER_COMPONENT)
    pod = pod_spec(
        "valley-grader",
        [grader_container(ctx, "0.0.0.0")],
        [GRADER_TMP],
        ctx.profile.pods.grader,
        runtimeClassName=ctx.profile.gvisor_runtime_class,
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(run, ctx, grader_name(run), "grader"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": run_component(run.name, GRADER_COMPONENT)},
            "template": {"metadata": {"labels": pod_labels}, "spec": pod},
        },
    }


def grader_service(run: RunSpec, ctx: RenderContext) -> dict:
    return service(run, ctx, grader_name(run), "grader", "grader", GRADER_PORT)


def grader_network_policy(run: RunSpec, ctx: RenderContext) -> dict:
    """Only this run's eval pod may reach its graders; graders reach nothing."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(run, ctx, grader_name(run), "grader"),
        "spec": {
            "podSelector": {"matchLabels": run_component(run.name, GRADER_COMPONENT)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": run_component(run.name, "eval")}}],
                    "ports": [{"protocol": "TCP", "port": GRADER_PORT}],
                }
            ],
            "egress": [],
        },
    }
