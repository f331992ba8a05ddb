"""The API server's answers that valleyctl's messages are built from, asserted word for word on both
control planes: where the fake answered otherwise than kube-apiserver v1.36, the fake was fixed (a
named GET in a missing namespace, pods/log of a container the pod lacks)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_control_plane import LAUNCHER


def answer(call) -> tuple[int, str, str]:
    """(status code, reason, message) of a call the server refuses."""
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as refused:
        call()
    body = json.loads(refused.value.body or "{}")
    return refused.value.status, body.get("reason", ""), body.get("message", "")


def as_launcher(plane):
    from kubernetes import config

    return config.new_client_from_config(config_file=str(plane.kubeconfig_for(LAUNCHER)))


def job(name: str) -> dict:
    container = {
        "name": "main",
        "image": "valley.local/none:1",
        "command": ["true"],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "10m", "memory": "16Mi"}},
        "securityContext": {  # what the namespace's Pod Security level (restricted) admits
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }


def test_refusals_are_worded_as_the_api_server_words_them(control_plane):
    from kubernetes import client

    ns = control_plane.namespace
    user = f'User "system:serviceaccount:{ns}:{LAUNCHER}"'
    launcher = as_launcher(control_plane)
    core, batch = client.CoreV1Api(launcher), client.BatchV1Api(launcher)
    assert answer(lambda: core.read_namespaced_secret("valley-hf", ns)) == (
        403,
        "Forbidden",
        f'secrets "valley-hf" is forbidden: {user} cannot get resource "secrets" in API group "" '
        f'in the namespace "{ns}"',
    )
    assert answer(lambda: batch.list_namespaced_job("default")) == (
        403,
        "Forbidden",
        f'jobs.batch is forbidden: {user} cannot list resource "jobs" in API group "batch" in the namespace "default"',
    )
    admin = client.BatchV1Api(control_plane.admin)
    missing = f"nowhere-{ns}"
    assert answer(lambda: admin.read_namespaced_job("x", missing)) == (404, "NotFound", 'jobs.batch "x" not found')
    assert answer(lambda: admin.create_namespaced_job(missing, job("x"))) == (
        404,
        "NotFound",
        f'namespaces "{missing}" not found',
    )
    assert admin.list_namespaced_job(missing).items == []
    assert answer(lambda: batch.delete_namespaced_job("x", ns)) == (404, "NotFound", 'jobs.batch "x" not found')


def test_quota_is_charged_before_the_name_is_looked_at(control_plane):
    from kubernetes import client

    from tests.e2e.conftest import wait_for

    ns = control_plane.namespace
    batch = client.BatchV1Api(as_launcher(control_plane))
    batch.create_namespaced_job(ns, job("first"))
    control_plane.create(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "jobs"},
            "spec": {"hard": {"count/jobs.batch": "1"}},
        }
    )
    core = control_plane.core
    wait_for("the quota's first count", lambda: core.read_namespaced_resource_quota("jobs", ns).status.used)
    full = "exceeded quota: jobs, requested: count/jobs.batch=1, used: count/jobs.batch=1, limited: count/jobs.batch=1"
    for name, dry_run in (("first", None), ("second", "All")):
        assert answer(
            lambda name=name, dry_run=dry_run: batch.create_namespaced_job(ns, job(name), dry_run=dry_run)
        ) == (
            403,
            "Forbidden",
            f'jobs.batch "{name}" is forbidden: {full}',
        ), "a create is refused by quota before the server finds the name taken, dry-runs too"


def test_pod_logs_without_a_kubelet(control_plane):
    """A pod on no node: the server answers its logs empty (204) once the container is one of the pod's."""
    from kubernetes import client

    ns = control_plane.namespace
    batch = client.BatchV1Api(control_plane.admin)
    batch.create_namespaced_job(ns, {**job("logged"), "spec": {**job("logged")["spec"], "suspend": False}})
    from tests.e2e import kubelet

    (pod,) = kubelet.pods_of(control_plane, "logged")
    name = pod["metadata"]["name"]
    core = client.CoreV1Api(as_launcher(control_plane))
    assert core.read_namespaced_pod_log(name, ns, container="main", _preload_content=False).status == 204
    assert answer(lambda: core.read_namespaced_pod_log(name, ns, container="nope")) == (
        400,
        "BadRequest",
        f"container nope is not valid for pod {name}",
    )
