"""Control-plane fixtures: a local HTTP server speaking the subset of the Kubernetes API
valleyctl uses, a real MLflow tracking server, and the real valleyctl app in process.

The API server keeps objects by (plural, name) in one namespace and records every request.
Besides create (with server-side dry-run), list by label, read, merge patch, delete, pod logs
and Status errors it plays the parts of the control plane the tests need:
  * namespaces: a request into any other namespace than the fake's is refused as the real
    server does (`namespaces "x" not found`); a list there is empty;
  * RBAC or admission refusals: `fail[(method, plural)] = code` refuses every such request,
    `fail_after_dry_run` only the real ones (a quota or webhook a dry-run does not hit);
  * a Job controller: `run_job` makes the Job's pod, with container states, logs and the
    Job's conditions as the controller sets them, podFailurePolicy's FailJob rules included;
  * pod logs as the kubelet answers them: 400 for a container that never started.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

PATH = re.compile(
    r"^/(?:api/v1|apis/[^/]+/[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/?]+)"
    r"(?:/(?P<name>[^/?]+))?(?P<log>/log)?"
)


class FakeKube:
    """Objects by (plural, name); every request recorded; failures injectable."""

    def __init__(self, namespace: str = "valley") -> None:
        self.namespace = namespace
        self.objects: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.fail: dict[tuple[str, str], int] = {}
        self.fail_after_dry_run: dict[tuple[str, str], int] = {}
        #: (pod, container) -> log text of a container that ran
        self.logs: dict[tuple[str, str], str] = {}

    def matches(self, obj: dict, selector: str) -> bool:
        labels = obj["metadata"].get("labels", {})
        return all(labels.get(k) == v for k, v in (p.split("=", 1) for p in selector.split(",") if p))

    def names(self, plural: str) -> set[str]:
        return {name for (p, name) in self.objects if p == plural}

    # ----------------------------------------------------------------- Job controller

    def run_job(
        self,
        job_name: str,
        *,
        exit_code: int = 0,
        container: str | None = None,
        message: str = "",
        phase: str | None = None,
        waiting: str | None = None,
    ) -> dict:
        """Play the Job controller and kubelet for one pod of the Job: it ran to `exit_code` in
        `container` (default: the main one; init containers before it succeeded), or it is stuck
        with every container waiting for `waiting` (e.g. ContainerCreating). Sets the Job's
        conditions as the controller does, reading its podFailurePolicy."""
        job = self.objects[("jobs", job_name)]
        template = job["spec"]["template"]
        pod_name = f"{job_name}-x{len(self.names('pods')):04d}"
        labels = {
            **template["metadata"].get("labels", {}),
            "batch.kubernetes.io/job-name": job_name,
            "job-name": job_name,
        }
        inits = [c["name"] for c in template["spec"].get("initContainers", [])]
        mains = [c["name"] for c in template["spec"]["containers"]]
        failing = container or mains[0]
        statuses, init_statuses = [], []
        for name in inits + mains:
            if waiting:
                state = {"waiting": {"reason": waiting}}
            elif name == failing:
                state = {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}}
            elif name in inits and inits.index(name) < (inits.index(failing) if failing in inits else len(inits)):
                state = {"terminated": {"exitCode": 0, "reason": "Completed"}}
            elif name in inits or failing in inits:
                state = {"waiting": {"reason": "PodInitializing"}}
            else:
                state = {"terminated": {"exitCode": 0, "reason": "Completed"}}
            entry = {"name": name, "state": state, "image": "valley", "imageID": "", "ready": False, "restartCount": 0}
            (init_statuses if name in inits else statuses).append(entry)
            if "terminated" in state:
                self.logs[(pod_name, name)] = f"{name} of {pod_name}: {message or 'ran'}\n"
        pod_phase = phase or ("Pending" if waiting else "Succeeded" if exit_code == 0 else "Failed")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": self.namespace,
                "labels": labels,
                "creationTimestamp": f"2026-01-01T00:00:{len(self.names('pods')):02d}Z",
            },
            "spec": template["spec"],
            "status": {"phase": pod_phase, "containerStatuses": statuses, "initContainerStatuses": init_statuses},
        }
        self.objects[("pods", pod_name)] = pod
        if waiting:
            job["status"] = {"active": 1}
        elif exit_code == 0:
            job["status"] = {
                "succeeded": 1,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True"},
                ],
            }
        else:
            rule = next(
                (
                    i
                    for i, r in enumerate((job["spec"].get("podFailurePolicy") or {}).get("rules", []))
                    if r["action"] == "FailJob"
                    and r.get("onExitCodes", {}).get("containerName") in (None, failing)
                    and exit_code in r["onExitCodes"]["values"]
                ),
                None,
            )
            if rule is not None:
                reason = "PodFailurePolicy"
                text = (
                    f"Container {failing} for pod {self.namespace}/{pod_name} failed with exit code "
                    f"{exit_code} matching FailJob rule at index {rule}"
                )
            else:
                reason, text = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            job["status"] = {
                "failed": 1,
                "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": reason, "message": text},
                    {"type": "Failed", "status": "True", "reason": reason, "message": text},
                ],
            }
        return pod


def merge(target: dict, patch: dict) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


def handler_for(fake: FakeKube):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code: int, body) -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def status(self, code: int, reason: str, message: str) -> None:
            self.reply(
                code,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": reason,
                    "message": message,
                    "code": code,
                },
            )

        def handle_any(self, method: str) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            match = PATH.match(url.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.requests.append((method, self.path if "dryRun" in url.query else url.path, body))
            plural, name = match["plural"], match["name"]
            dry_run = "All" in query.get("dryRun", [])
            refusal = fake.fail.get((method, plural)) or (
                None if dry_run else fake.fail_after_dry_run.get((method, plural))
            )
            if refusal:
                return self.status(
                    refusal, "Forbidden" if refusal == 403 else "Invalid", f"{plural} denied by the test"
                )
            if match["ns"] != fake.namespace:
                if method == "GET" and name is None:
                    return self.reply(200, {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []})
                return self.status(404, "NotFound", f'namespaces "{match["ns"]}" not found')
            key = (plural, name or (body or {}).get("metadata", {}).get("name"))
            if match["log"]:
                container = query.get("container", [""])[0]
                if key not in fake.objects:
                    return self.status(404, "NotFound", f'pods "{name}" not found')
                if (name, container) not in fake.logs:
                    return self.status(
                        400,
                        "BadRequest",
                        f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating',
                    )
                return self.reply(200, fake.logs[(name, container)])
            if method == "POST":
                if key in fake.objects:
                    return self.status(409, "AlreadyExists", f"{plural} {key[1]} already exists")
                if dry_run:
                    return self.reply(201, body)
                body.setdefault("status", {})
                fake.objects[key] = body
                return self.reply(201, body)
            if method == "GET" and name is None:
                selector = query.get("labelSelector", [""])[0]
                items = [o for (p, _), o in fake.objects.items() if p == plural and fake.matches(o, selector)]
                return self.reply(200, {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})
            if key not in fake.objects:
                return self.status(404, "NotFound", f"{plural} {name} not found")
            if method == "GET":
                return self.reply(200, fake.objects[key])
            if method == "PATCH":
                merge(fake.objects[key], body)
                return self.reply(200, fake.objects[key])
            if method == "DELETE":
                deleted = fake.objects.pop(key)
                if plural == "services":  # a Service DELETE answers with the object, as a real server does
                    return self.reply(200, deleted)
                return self.reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PATCH(self):
            self.handle_any("PATCH")

        def do_DELETE(self):
            self.handle_any("DELETE")

    return Handler


@pytest.fixture
def cluster(tmp_path):
    fake = FakeKube()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(fake))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester", "namespace": "valley"}}],
            }
        )
    )
    yield fake, kubeconfig
    server.shutdown()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real tracking server (sqlite, one worker), as port-forwarded from the cluster."""
    from manager.mlflow_ui import mlflow_server as server

    root = tmp_path_factory.mktemp("mlflow-server")
    with server(f"sqlite:///{root / 'mlflow.db'}", workdir=root) as url:
        yield url


@pytest.fixture
def ctl(monkeypatch, capsys, tmp_path):
    """The real valleyctl app and its error wrapper, in this process (the cluster paths load
    mlflow and kubernetes once instead of per command): (exit code, stdout, stderr)."""
    from manager.cli import app
    from valley.cli_kit import run_cli

    monkeypatch.chdir(tmp_path)

    def invoke(args, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        try:
            run_cli(app, list(args), prog_name="valleyctl")
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


#: images as `valleyctl images build --registry R --push` records them: pullable by a node
PUSHED = {
    role: f"registry.example.com/ml/valley-{role}:0123456789abcdef@sha256:{'0' * 64}"
    for role in ("trainer", "evaluator", "grader")
}


def env_for(kubeconfig: Path, tmp_path: Path, uri: str | None = None) -> dict:
    """The kubeconfig, the namespace, a cluster profile with pushed images, the MLflow URI."""
    profile = tmp_path / "cluster.yaml"
    profile.write_text(json.dumps({"images": PUSHED}))
    env = {
        "KUBECONFIG": str(kubeconfig),
        "HOME": str(tmp_path),
        "VALLEY_NAMESPACE": "valley",
        "VALLEY_PROFILE": str(profile),
    }
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


@pytest.fixture
def kube_env():
    """env_for(kubeconfig, tmp_path, tracking_uri): what a valleyctl call against the fake needs."""
    return env_for
