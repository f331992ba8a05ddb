"""Checks every rendered or shipped Kubernetes object must pass: strict schema, hardening."""

from __future__ import annotations

import re
from typing import Iterator

KUBERNETES_VERSION = "1.33.0"  # pinned: native sidecars are GA from 1.33

_SECRET_LIKE = re.compile(r"(password|secret|token|access.?key)", re.I)


def validate_strict(obj: dict) -> None:
    """Validate one object against the official schema of the pinned version, strict mode."""
    import kubernetes_validate

    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def pod_specs(obj: dict) -> Iterator[dict]:
    """Every PodSpec inside an object (Pod, Job, CronJob, Deployment, StatefulSet, ...)."""
    kind = obj.get("kind")
    spec = obj.get("spec", {})
    if kind == "Pod":
        yield spec
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif "template" in spec and "spec" in spec["template"]:
        yield spec["template"]["spec"]


def assert_hardened(pod: dict, *, allow_service_account_token: bool = False) -> None:
    """The hardening baseline of DESIGN.md: non-root, no escalation, caps dropped, seccomp,
    requests/limits, no token unless needed, secrets only as mounted files (never env vars)."""
    security = pod.get("securityContext", {})
    assert security.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot must be true"
    assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", (
        "pod seccompProfile must be RuntimeDefault"
    )
    if not allow_service_account_token:
        assert pod.get("automountServiceAccountToken") is False, "automountServiceAccountToken must be false"
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name = container["name"]
        ctx = container.get("securityContext", {})
        assert ctx.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation must be false"
        assert ctx.get("privileged") in (None, False), f"{name}: must not be privileged"
        assert "ALL" in ctx.get("capabilities", {}).get("drop", []), f"{name}: capabilities must drop ALL"
        assert not ctx.get("capabilities", {}).get("add"), f"{name}: must add no capabilities"
        resources = container.get("resources", {})
        assert resources.get("requests") and resources.get("limits"), f"{name}: needs resource requests and limits"
        for env in container.get("env", []):
            if "secretKeyRef" in env.get("valueFrom", {}):
                raise AssertionError(
                    f"{name}: env {env['name']} carries a Secret; mount it as a file and read it by path"
                )
            if "value" in env and _SECRET_LIKE.search(env["name"]) and not env["name"].endswith(("_PATH", "_FILE")):
                raise AssertionError(
                    f"{name}: env {env['name']} inlines a secret; mount it as a file and read it by path"
                )
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                raise AssertionError(
                    f"{name}: envFrom Secret {source['secretRef']['name']}; mount it as a file instead"
                )
