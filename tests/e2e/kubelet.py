"""A kubelet stand-in for a control plane without nodes: it writes pod status through the status
subresource (phase, per-container exit codes, init containers, DisruptionTarget), so the Job
controller decides backoff, podFailurePolicy and completions from it as it would from a node."""

from __future__ import annotations

from tests.e2e.conftest import ControlPlane, wait_for

NOW = "2026-01-01T00:00:00Z"


def pods_of(plane: ControlPlane, job: str, count: int = 1) -> list[dict]:
    """The Job's pods, once the Job controller has made `count` of them (oldest first)."""

    def found():
        pods = plane.core.list_namespaced_pod(plane.namespace, label_selector=f"batch.kubernetes.io/job-name={job}")
        items = [plane.admin.sanitize_for_serialization(p) for p in pods.items]
        items.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
        return items if len(items) >= count else None

    return wait_for(f"{count} pod(s) of Job {job}", found)


def _status(name: str, state: dict) -> dict:
    return {
        "name": name,
        "state": state,
        "image": "valley",
        "imageID": "",
        "ready": "running" in state,
        "restartCount": 0,
    }


def start(plane: ControlPlane, pod: dict) -> None:
    """Init containers done, main containers running, the pod Ready."""
    spec = pod["spec"]
    plane.core.patch_namespaced_pod_status(
        pod["metadata"]["name"],
        plane.namespace,
        {
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                "initContainerStatuses": [
                    _status(c["name"], {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": NOW}})
                    for c in spec.get("initContainers", [])
                ],
                "containerStatuses": [_status(c["name"], {"running": {"startedAt": NOW}}) for c in spec["containers"]],
            }
        },
    )


def finish(plane: ControlPlane, pod: dict, exit_code: int = 0, container: str | None = None, at: str = NOW) -> None:
    """The pod ran: `container` (default the main one) exited with `exit_code`, the others with 0."""
    spec = pod["spec"]
    failing = container or spec["containers"][0]["name"]

    def ended(name: str) -> dict:
        code = exit_code if name == failing else 0
        return _status(
            name, {"terminated": {"exitCode": code, "reason": "Error" if code else "Completed", "finishedAt": at}}
        )

    plane.core.patch_namespaced_pod_status(
        pod["metadata"]["name"],
        plane.namespace,
        {
            "status": {
                "phase": "Failed" if exit_code else "Succeeded",
                "conditions": [{"type": "Ready", "status": "False"}],
                "initContainerStatuses": [ended(c["name"]) for c in spec.get("initContainers", [])],
                "containerStatuses": [ended(c["name"]) for c in spec["containers"]],
            }
        },
    )


def unschedulable(plane: ControlPlane, pod: dict) -> None:
    plane.core.patch_namespaced_pod_status(
        pod["metadata"]["name"],
        plane.namespace,
        {
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                    }
                ],
            }
        },
    )


def run_job(plane: ControlPlane, job: str, exit_code: int = 0) -> dict:
    """Play the Job's (next) pod from start to end."""
    pod = pods_of(plane, job)[-1]
    start(plane, pod)
    finish(plane, pod, exit_code)
    return pod


def job_condition(plane: ControlPlane, job: str, kind: str) -> dict:
    from kubernetes import client

    def found():
        status = client.BatchV1Api(plane.admin).read_namespaced_job(job, plane.namespace).status
        return next((c for c in status.conditions or [] if c.type == kind and c.status == "True"), None)

    return wait_for(f"Job {job} {kind}", found)


def job_ready(plane: ControlPlane, job: str) -> None:
    """Wait until the Job controller counts a ready pod of the Job (status.ready)."""
    from kubernetes import client

    batch = client.BatchV1Api(plane.admin)
    wait_for(f"a ready pod of Job {job}", lambda: batch.read_namespaced_job(job, plane.namespace).status.ready)
