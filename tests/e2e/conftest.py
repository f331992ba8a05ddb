"""The control plane as a cluster admin runs it: the kit applied, then valleyctl as the kit's own
ServiceAccounts, pods driven by a kubelet stand-in the tests own.

Two control planes run the same scenarios:
  * `fake`: the API server of tests/manager/conftest.py playing RBAC (from the kit's Roles and
    RoleBindings, applied like any object), quota admission and the Job controller; always;
  * `cluster`: a real kube-apiserver and kube-controller-manager from VALLEY_E2E_KUBECONFIG (admin
    rights, used only for set-up and the kubelet stand-in); skipped with one line without it.

Each test gets its own namespace (`valley-e2e-<random>`) and deletes only what it created.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.e2e.faults import FlakyTracking, summary
from tests.k8s.kustomize_builds import K8S, kustomize_command
from tests.manager.conftest import ADMIN_TOKEN, PUSHED, FakeKube, ctl, handler_for  # noqa: F401

E2E_KUBECONFIG = "VALLEY_E2E_KUBECONFIG"
#: as_account's name for the cluster admin (set-up only: never for what the kit's accounts do)
ADMIN = "admin"
#: how long the real controllers get to react to a change
SETTLE_S = 60.0


def kit_objects(namespace: str) -> list[dict]:
    """k8s/overlays/dev as an admin applies it, moved into `namespace`."""
    built = subprocess.run(
        [*kustomize_command(), str(K8S / "overlays" / "dev")], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    objects = [obj for obj in yaml.safe_load_all(built) if obj]
    for obj in objects:
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = namespace
        elif obj["kind"] != "RuntimeClass":
            obj["metadata"]["namespace"] = namespace
        for subject in obj.get("subjects") or []:
            subject["namespace"] = namespace
    return objects


class ControlPlane:
    """An admin client of one control plane, the namespace the test owns, and what it created outside it;
    `fake` is the fake API server's state (None on a real cluster)."""

    def __init__(self, kubeconfig: Path, namespace: str, workdir: Path, fake: FakeKube | None = None) -> None:
        from kubernetes import config

        self.kubeconfig, self.namespace, self.workdir, self.fake = kubeconfig, namespace, workdir, fake
        self.kind = "fake" if fake is not None else "cluster"
        self.admin = config.new_client_from_config(config_file=str(kubeconfig))
        self.cluster_scoped: list[dict] = []

    @property
    def core(self):
        from kubernetes import client

        return client.CoreV1Api(self.admin)

    def apply_kit(self) -> None:
        from kubernetes import utils
        from kubernetes.client.exceptions import ApiException

        for obj in kit_objects(self.namespace):
            try:
                utils.create_from_dict(self.admin, obj)
                if obj["kind"] == "RuntimeClass":
                    self.cluster_scoped.append(obj)
            except (ApiException, utils.FailToCreateError) as error:
                if obj["kind"] != "RuntimeClass" or "AlreadyExists" not in str(error):  # the cluster's own: kept
                    raise

    @property
    def api_address(self) -> tuple[str, int]:
        """(host, port) of the API server, for a proxy in front of it."""
        from urllib.parse import urlparse

        url = urlparse(self.admin.configuration.host)
        return url.hostname, url.port or (443 if url.scheme == "https" else 80)

    def kubeconfig_for(self, account: str, port: int | None = None) -> Path:
        """A kubeconfig holding a TokenRequest token of one of the kit's ServiceAccounts (through a proxy
        on 127.0.0.1:`port`, if given)."""
        token = self.core.create_namespaced_service_account_token(
            account, self.namespace, {"spec": {"expirationSeconds": 3600}}
        ).status.token
        config = yaml.safe_load(self.kubeconfig.read_text())
        context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
        cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])
        if port is not None:
            scheme = self.admin.configuration.host.split("://")[0]
            cluster = {**cluster, "cluster": {**cluster["cluster"], "server": f"{scheme}://127.0.0.1:{port}"}}
        path = self.workdir / f"kubeconfig-{account}{'' if port is None else f'-via-{port}'}"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": account,
                    "clusters": [cluster],
                    "users": [{"name": account, "user": {"token": token}}],
                    "contexts": [{"name": account, "context": {"cluster": cluster["name"], "user": account}}],
                }
            )
        )
        return path

    def may(self, account: str, verb: str, group: str, resource: str) -> bool:
        """Whether RBAC lets one of the kit's ServiceAccounts do this in the namespace, as the server decides now."""
        from kubernetes import client

        if self.fake is not None:
            with self.fake.lock:
                return self.fake.allowed(account, verb, group, resource)
        review = client.AuthorizationV1Api(self.admin).create_subject_access_review(
            {
                "spec": {
                    "user": f"system:serviceaccount:{self.namespace}:{account}",
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{self.namespace}"],
                    "resourceAttributes": {
                        "namespace": self.namespace,
                        "verb": verb,
                        "group": group,
                        "resource": resource,
                    },
                }
            }
        )
        return bool(review.status.allowed)

    def create(self, obj: dict) -> None:
        from kubernetes import utils

        utils.create_from_dict(self.admin, {**obj, "metadata": {**obj["metadata"], "namespace": self.namespace}})

    def cleanup(self) -> None:
        from kubernetes import client

        self.core.delete_namespace(self.namespace, propagation_policy="Background")
        for obj in self.cluster_scoped:
            client.NodeV1Api(self.admin).delete_runtime_class(obj["metadata"]["name"])


@pytest.fixture(scope="module", params=["fake", "cluster"])
def plane_kind(request):
    if request.param == "cluster" and not os.environ.get(E2E_KUBECONFIG):
        pytest.skip(f"no real control plane: set {E2E_KUBECONFIG} to an admin kubeconfig to run the e2e suite on it")
    if request.param == "cluster" and (nodes := schedulable_nodes(Path(os.environ[E2E_KUBECONFIG]))):
        pytest.skip(
            f"the cluster has schedulable nodes ({', '.join(nodes)}): a real kubelet would run the pods the kubelet "
            "stand-in drives; run the control-plane scenarios on a control plane without nodes (or cordon them)"
        )
    return request.param


def schedulable_nodes(kubeconfig: Path) -> list[str]:
    """The Ready, uncordoned nodes of the cluster (a scheduler there would place the scenarios' pods)."""
    from kubernetes import client, config

    nodes = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig))).list_node().items
    return [
        node.metadata.name
        for node in nodes
        if not node.spec.unschedulable
        and any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    ]


@pytest.fixture(scope="session")
def tracking_servers(tmp_path_factory):
    """One real tracking server per control plane kind, for the session (runs are found by spec: two
    planes must not share one), each behind a proxy the fault tests stop, start and hook into."""
    servers: dict[str, FlakyTracking] = {}

    def server(kind: str) -> FlakyTracking:
        if kind not in servers:
            servers[kind] = FlakyTracking(tmp_path_factory.mktemp(f"mlflow-{kind}")).start()
        return servers[kind]

    yield server
    for flaky in servers.values():
        flaky.stop()


@pytest.fixture
def flaky_tracking(plane_kind, tracking_servers):
    """The plane's tracking server, running and without hooks before and after the test."""
    flaky = tracking_servers(plane_kind)
    if flaky.upstream is None:
        flaky.start()
    yield flaky
    flaky.clear()
    if flaky.upstream is None:
        flaky.start()


@pytest.fixture
def tracking(flaky_tracking) -> str:
    return flaky_tracking.url


@pytest.fixture
def control_plane(plane_kind, tmp_path):
    namespace = f"valley-e2e-{secrets.token_hex(3)}"
    server = fake = None
    if plane_kind == "cluster":
        kubeconfig = Path(os.environ[E2E_KUBECONFIG])
    else:
        fake = FakeKube(namespace)
        fake.controller = True
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(fake))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        kubeconfig = tmp_path / "admin-kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "fake",
                    "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                    "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "admin"}}],
                }
            )
        )
    plane = ControlPlane(kubeconfig, namespace, tmp_path, fake)
    plane.apply_kit()
    try:
        yield plane
    finally:
        plane.cleanup() if server is None else server.shutdown()


def wait_for(what: str, check, timeout: float = SETTLE_S):
    """Poll `check()` until it returns something truthy (the real controllers react asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.5)


class Accounts:
    """as_account(service account, args) -> (exit code, stdout, stderr) of valleyctl run in process with
    that account's token, in the test's namespace, recording into the plane's tracking server;
    `env(account)` is that environment, for a valleyctl process of its own."""

    def __init__(self, run_valleyctl, plane: ControlPlane, tracking: str, workdir: Path) -> None:
        self.ctl, self.plane, self.tracking, self.workdir = run_valleyctl, plane, tracking, workdir
        self.profile = workdir / "cluster.yaml"
        self.profile.write_text(json.dumps({"images": PUSHED}))
        self.kubeconfigs: dict[tuple[str, int | None], Path] = {}

    def env(self, account: str, port: int | None = None) -> dict[str, str]:
        if (account, port) not in self.kubeconfigs:
            self.kubeconfigs[(account, port)] = (
                self.plane.kubeconfig if account == ADMIN else self.plane.kubeconfig_for(account, port)
            )
        return {
            "KUBECONFIG": str(self.kubeconfigs[(account, port)]),
            "HOME": str(self.workdir),
            "VALLEY_NAMESPACE": self.plane.namespace,
            "VALLEY_PROFILE": str(self.profile),
            "MLFLOW_TRACKING_URI": self.tracking,
        }

    def __call__(self, account: str, args: list[str], port: int | None = None):
        return self.ctl(args, self.env(account, port))


@pytest.fixture
def as_account(ctl, control_plane, tracking, tmp_path):  # noqa: F811 (the ctl fixture imported above)
    return Accounts(ctl, control_plane, tracking, tmp_path)


def pytest_terminal_summary(terminalreporter):
    for line in summary():
        terminalreporter.write_line(line)
