"""Thin calls to the Kubernetes API through the official `kubernetes` client.

Objects go in and come out as plain dicts (camelCase, as rendered); every failure becomes
one `ValleyError` line naming the object and the fix. The client loads lazily.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

from valley.errors import ValleyError

#: kind -> (client API class, method suffix) for the kinds a run renders
KINDS = {
    "ConfigMap": ("CoreV1Api", "config_map"),
    "Service": ("CoreV1Api", "service"),
    "Job": ("BatchV1Api", "job"),
    "Deployment": ("AppsV1Api", "deployment"),
    "NetworkPolicy": ("NetworkingV1Api", "network_policy"),
    "Pod": ("CoreV1Api", "pod"),
}
#: seconds to wait for a connection to the API server
CONNECT_TIMEOUT = 10.0
#: what `cancel` deletes, dependants first
RUN_KINDS = ("Job", "Deployment", "Service", "NetworkPolicy", "ConfigMap")

NO_CLUSTER = (
    "no Kubernetes cluster configured: no kubeconfig (KUBECONFIG or ~/.kube/config) and not inside a "
    "cluster; point KUBECONFIG at your cluster, or run on this machine with --executor local"
)

NO_NAMESPACE = (
    "namespace {ns} does not exist on the cluster (or you may not see it); "
    "create it with `kubectl apply -k k8s/overlays/dev` or pass --namespace"
)

_STATUS_HINTS = {
    401: "unauthorized: the cluster rejected your credentials; refresh them (log in to the cluster again)",
    403: "forbidden in namespace {ns}: {message}",
    404: "not found in namespace {ns}; is valley installed there (`kubectl apply -k k8s/overlays/dev`)?",
    409: "already exists",
    422: "rejected as invalid: {message}",
}


def _message(error) -> str:
    import json

    try:
        return json.loads(error.body).get("message", error.reason)
    except (TypeError, ValueError, AttributeError):
        return str(error.reason)


#: the API server's RBAC refusal: `... is forbidden: User "U" cannot VERB resource "R" in API group "G" ...`
_RBAC = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+) resource "(?P<resource>[^"]*)" in API group "(?P<group>[^"]*)"'
)


def api_error_line(status: int, what: str, namespace: str, message: str) -> str:
    if status == 403:
        rbac = _RBAC.search(message)
        if rbac is None:  # quota, Pod Security or another admission plugin: its own words say why
            return f"{what}: refused by the cluster's admission control: {message}"
        resource = rbac["resource"] + (f".{rbac['group']}" if rbac["group"] else "")
        return (
            f"{what}: forbidden by RBAC: {rbac['user']} may not {rbac['verb']} {resource} in namespace "
            f"{namespace}; apply the kit's Roles (k8s/base/rbac.yaml) or ask an admin"
        )
    hint = _STATUS_HINTS.get(status, "API error {status}: {message}")
    return f"{what}: " + hint.format(ns=namespace, message=message, status=status)


class Kube:
    """A namespace of one cluster."""

    def __init__(self, api_client, namespace: str) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.host = api_client.configuration.host

    @classmethod
    def connect(cls, namespace: str, context: str | None = None) -> "Kube":
        """kubeconfig (its current or the named context), else the in-cluster service account."""
        import os

        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        try:
            # KUBECONFIG read now, not when the client module was imported (it caches it then)
            api_client = config.new_client_from_config(
                config_file=os.environ.get("KUBECONFIG") or None, context=context
            )
        except (ConfigException, FileNotFoundError, TypeError):
            try:
                config.load_incluster_config()
            except ConfigException:
                raise ValleyError(NO_CLUSTER) from None
            api_client = client.ApiClient()
        return cls(api_client, namespace)

    def _api(self, kind: str):
        import kubernetes.client

        if kind not in KINDS:
            raise ValleyError(f"{kind}: valleyctl does not manage this kind; allowed: {', '.join(KINDS)}")
        api_class, suffix = KINDS[kind]
        return getattr(kubernetes.client, api_class)(self.api_client), suffix

    @contextmanager
    def call(self, what: str, *, allow: tuple[int, ...] = ()) -> Iterator[dict]:
        """Turn API and connection failures into one line; `allow`ed statuses are returned
        in the yielded dict (`{"status": 409}`) instead of raised."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        outcome: dict = {}
        try:
            yield outcome
        except ApiException as error:
            if error.status in allow:
                outcome["status"] = error.status
                outcome["message"] = _message(error)
                return
            if error.status == 404 and _message(error) == f'namespaces "{self.namespace}" not found':
                raise ValleyError(NO_NAMESPACE.format(ns=self.namespace)) from error
            raise ValleyError(api_error_line(error.status, what, self.namespace, _message(error))) from error
        except HTTPError as error:
            raise ValleyError(
                f"cannot reach the Kubernetes API at {self.host} ({type(error).__name__}); "
                "check the cluster is up and KUBECONFIG points at it"
            ) from error

    def _dict(self, obj) -> dict:
        return self.api_client.sanitize_for_serialization(obj)

    # ---------------------------------------------------------------------- objects

    def create(self, obj: dict, *, dry_run: bool = False) -> str:
        """'created', or 'exists' when an object of that name is already there (idempotent).
        `dry_run`: the server checks everything a create would (namespace, RBAC, admission,
        validation) and stores nothing. An object already there is found by a read first: a create
        of it would still be charged against a quota (admission runs before the name is checked)."""
        api, suffix = self._api(obj["kind"])
        name = obj["metadata"]["name"]
        if self.get(obj["kind"], name) is not None:
            return "exists"
        extra = {"dry_run": "All"} if dry_run else {}
        with self.call(f"{obj['kind']} {self.namespace}/{name}", allow=(409,)) as outcome:
            getattr(api, f"create_namespaced_{suffix}")(self.namespace, body=obj, **extra)
        return "exists" if outcome.get("status") == 409 else "created"

    def require_namespace(self) -> None:
        """A list in a namespace that does not exist answers an empty list: ask the server with a
        dry-run create, which names a missing namespace (RBAC refusals leave the question open)."""
        probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "valley-namespace-probe"}}
        with self.call(f"namespace {self.namespace}", allow=(403, 409)):
            self._api("ConfigMap")[0].create_namespaced_config_map(self.namespace, body=probe, dry_run="All")

    def list(self, kind: str, selector: str) -> list[dict]:
        api, suffix = self._api(kind)
        with self.call(f"{kind}s in {self.namespace} ({selector})"):
            items = getattr(api, f"list_namespaced_{suffix}")(self.namespace, label_selector=selector).items
        return [self._dict(item) for item in items]

    def get(self, kind: str, name: str) -> dict | None:
        api, suffix = self._api(kind)
        with self.call(f"{kind} {self.namespace}/{name}", allow=(404,)) as outcome:
            found = getattr(api, f"read_namespaced_{suffix}")(name, self.namespace)
        return None if outcome.get("status") == 404 else self._dict(found)

    def patch_job(self, name: str, patch: dict) -> None:
        api, _ = self._api("Job")
        with self.call(f"Job {self.namespace}/{name}"):
            api.patch_namespaced_job(name, self.namespace, body=patch)

    def delete(self, kind: str, name: str) -> bool:
        """Delete with background propagation (a Job takes its pods); False if already gone."""
        api, suffix = self._api(kind)
        with self.call(f"{kind} {self.namespace}/{name}", allow=(404,)) as outcome:
            getattr(api, f"delete_namespaced_{suffix}")(name, self.namespace, propagation_policy="Background")
        return outcome.get("status") != 404

    # ------------------------------------------------------------------------- pods

    def pod_log_text(self, pod: str, container: str) -> str | None:
        """A container's whole log, or None when it has none (never started, or gone)."""
        import kubernetes.client

        api = kubernetes.client.CoreV1Api(self.api_client)
        with self.call(f"Pod {self.namespace}/{pod} container {container}", allow=(400, 404)) as outcome:
            text = api.read_namespaced_pod_log(pod, self.namespace, container=container, _preload_content=False).data
        return None if outcome.get("status") else text.decode(errors="replace")

    def pod_log(self, pod: str, container: str, *, follow: bool = False, timeout: float = 60.0) -> Iterator[str]:
        """A container's log, line by line; with `follow`, until the container exits or nothing
        came for `timeout` seconds."""
        import kubernetes.client
        from urllib3.exceptions import ProtocolError, ReadTimeoutError

        api = kubernetes.client.CoreV1Api(self.api_client)
        with self.call(f"Pod {self.namespace}/{pod} container {container}"):
            response = api.read_namespaced_pod_log(
                pod,
                self.namespace,
                container=container,
                follow=follow,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT, max(timeout, 1.0)),
            )
            try:
                for line in response.stream() if follow else [response.data]:
                    yield line.decode(errors="replace")
            except (ReadTimeoutError, ProtocolError):  # quiet for `timeout`, or the stream was cut: the caller decides
                return
