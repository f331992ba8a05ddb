"""launch / status / logs / cancel / reconcile through the real `kubernetes` client.

No cluster runs on these machines, so the client talks to a small local HTTP server that
speaks the subset of the Kubernetes API valleyctl uses (create, list by label, read, merge
patch, delete, pod logs, Status errors); the tests assert the request bodies it received.
MLflow is a real `mlflow server` over sqlite, since launch records where the pods log.
"""

import json
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

PATH = re.compile(r"^/(?:api/v1|apis/[^/]+/[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/?]+)(?:/(?P<name>[^/?]+))?(?P<log>/log)?")


class FakeKube:
    """Objects by (plural, name); every request recorded; failures injectable."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.fail: dict[tuple[str, str], int] = {}

    def matches(self, obj: dict, selector: str) -> bool:
        labels = obj["metadata"].get("labels", {})
        return all(labels.get(k) == v for k, v in (p.split("=", 1) for p in selector.split(",") if p))


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
            self.reply(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                              "message": message, "code": code})

        def handle_any(self, method: str) -> None:
            from urllib.parse import parse_qs, urlparse

            url = urlparse(self.path)
            match = PATH.match(url.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.requests.append((method, url.path, body))
            plural, name = match["plural"], match["name"]
            if (method, plural) in fake.fail:
                code = fake.fail[(method, plural)]
                return self.status(code, "Forbidden" if code == 403 else "Invalid", f"{plural} denied by the test")
            key = (plural, name or (body or {}).get("metadata", {}).get("name"))
            if match["log"]:
                return self.reply(200, f"log of {name}\n")
            if method == "POST":
                if key in fake.objects:
                    return self.status(409, "AlreadyExists", f"{plural} {key[1]} already exists")
                body.setdefault("status", {})
                fake.objects[key] = body
                return self.reply(201, body)
            if method == "GET" and name is None:
                selector = parse_qs(url.query).get("labelSelector", [""])[0]
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
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester", "namespace": "valley"}}],
    }))
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
            run_cli(lambda: app(args=list(args), prog_name="valleyctl"))
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


#: images as `valleyctl images build --registry R --push` records them: pullable by a node
PUSHED = {role: f"registry.example.com/ml/valley-{role}:0123456789abcdef@sha256:{'0' * 64}"
          for role in ("trainer", "evaluator", "grader")}


def env_for(kubeconfig: Path, tmp_path: Path, uri: str | None = None) -> dict:
    profile = tmp_path / "cluster.yaml"
    profile.write_text(json.dumps({"images": PUSHED}))
    env = {"KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path), "VALLEY_NAMESPACE": "valley", "VALLEY_PROFILE": str(profile)}
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


@pytest.mark.parametrize("args", [
    ["launch", "--size", "10k", "--model", "llama"],
    ["status", "--executor", "k8s"],
    ["reconcile"],
    ["cancel", "qwen-10k"],
    ["logs", "qwen-10k"],
])
def test_without_a_cluster_one_line_names_the_fix(valleyctl, tmp_path, args):
    env = {"KUBECONFIG": str(tmp_path / "absent"), "HOME": str(tmp_path)}
    result = valleyctl(args, env=env, cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: no Kubernetes cluster configured: no kubeconfig (KUBECONFIG or ~/.kube/config) and not inside a "
        "cluster; point KUBECONFIG at your cluster, or run on this machine with --executor local"]


def test_launch_needs_the_clusters_mlflow(ctl, tmp_path, cluster, monkeypatch):
    fake, kubeconfig = cluster
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, err = ctl(["launch", "--size", "10k", "--model", "llama"], env_for(kubeconfig, tmp_path))
    assert code == 1 and "port-forward svc/valley-mlflow" in err
    assert fake.requests == []


@pytest.mark.parametrize("images, why", [
    ({}, "has no registry"),  # what render falls back to before any build: valley-trainer:<content tag>
    ({"trainer": "registry.example.com/ml/valley-trainer:0123456789abcdef"}, "is not pushed"),
])
def test_launch_refuses_images_a_node_cannot_pull(ctl, tmp_path, cluster, mlflow_server, images, why):
    fake, kubeconfig = cluster
    env = env_for(kubeconfig, tmp_path, mlflow_server)
    Path(env["VALLEY_PROFILE"]).write_text(json.dumps({"images": {**PUSHED, **images}} if images else {}))
    code, _, err = ctl(["launch", "--size", "10k", "--model", "llama"], env)
    assert code == 1
    (line,) = err.splitlines()
    assert why in line and "valleyctl images build --registry R --push" in line
    assert fake.requests == []
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("valley-valley")
    assert experiment is None or not client.search_runs([experiment.experiment_id], "tags.`valley.label` = 'llama-10k'")


def test_launch_reconcile_status_logs_cancel(ctl, tmp_path, cluster, mlflow_server):
    fake, kubeconfig = cluster
    env = env_for(kubeconfig, tmp_path, mlflow_server)

    def valleyctl(args, env, cwd):
        code, out, err = ctl(args, env)
        assert code == 0, err
        return subprocess.CompletedProcess(args, code, out, err)

    out = valleyctl(["launch", "--run", "qwen-30k+easy-4k"], env=env, cwd=tmp_path).stdout
    client = MlflowClient(mlflow_server)
    runs = {r.data.tags["valley.label"]: r for r in client.search_runs(
        [client.get_experiment_by_name("valley-valley").experiment_id], "tags.`valley.kind` = 'run'")}
    assert set(runs) == {"qwen-30k", "qwen-30k+easy-4k"}, "the base run is launched with its dependant"
    base, continued = runs["qwen-30k"], runs["qwen-30k+easy-4k"]
    base_name = base.data.tags["valley.run_name"]
    assert f"qwen-30k: {base_name}, new MLflow run {base.info.run_id}" in out and "next: valleyctl status" in out

    posts = {body["metadata"]["name"]: body for method, _, body in fake.requests if method == "POST"}
    assert posts[f"{base_name}-mlflow"]["data"]["run_id"] == base.info.run_id
    fetch = next(name for name in posts if name.startswith("valley-fetch-qwen-"))
    assert posts[fetch]["spec"]["suspend"] is False
    assert posts[f"{base_name}-train"]["spec"]["suspend"] is True
    assert posts[f"{base_name}-eval"]["spec"]["suspend"] is True
    # each run: spec, mlflow, train, grader x3, eval; shared: the fetch and the LiveCodeBench window
    # (Job + input) once, a subset build (Job + input) per subset
    assert len(fake.objects) == 2 * 7 + 3 + 2 * 2
    manifests = client.download_artifacts(base.info.run_id, "manifests/manifests.yaml", str(tmp_path))
    assert f"name: {base_name}-train" in Path(manifests).read_text()

    again = valleyctl(["launch", "--run", "qwen-30k+easy-4k"], env=env, cwd=tmp_path).stdout
    assert "existing MLflow run" in again and "0 object(s) created, 12 already there" in again
    assert len(client.search_runs([base.info.experiment_id], "tags.`valley.kind` = 'run'")) == 2

    done = {"conditions": [{"type": "Complete", "status": "True"}]}
    for (plural, _), obj in fake.objects.items():
        if plural == "jobs" and "valley.shared" in obj["metadata"]["labels"]:
            obj["status"] = done
    reconciled = valleyctl(["reconcile"], env=env, cwd=tmp_path).stdout
    assert f"opened {base_name}-train" in reconciled
    patches = [(path, body) for method, path, body in fake.requests if method == "PATCH"]
    assert patches == [(f"/apis/batch/v1/namespaces/valley/jobs/{base_name}-train", {"spec": {"suspend": False}})]
    assert client.get_run(base.info.run_id).info.status == "RUNNING"
    assert f"train waits for {base_name}-train" in reconciled
    valleyctl(["reconcile"], env=env, cwd=tmp_path)
    assert len([r for r in fake.requests if r[0] == "PATCH"]) == 1, "a second pass changes nothing"

    rows = json.loads(valleyctl(["status", "--executor", "k8s", "--json"], env=env, cwd=tmp_path).stdout)
    row = next(r for r in rows if r["label"] == "qwen-30k")
    assert (row["mlflow"], row["data"], row["train"], row["eval"]) == ("RUNNING", "succeeded", "pending", "suspended")

    fake.objects[("pods", f"{base_name}-data-x1")] = {
        "metadata": {"name": f"{base_name}-data-x1", "labels": {"valley.run": base_name, "app.kubernetes.io/component": "data"}},
        "spec": {"containers": [{"name": "data-build"}], "initContainers": [{"name": "model-fetch"}]},
        "status": {"phase": "Succeeded"}}
    logs = valleyctl(["logs", "qwen-30k"], env=env, cwd=tmp_path).stdout
    assert f"==> {base_name}-data-x1/model-fetch <==" in logs and f"log of {base_name}-data-x1" in logs

    cancelled = valleyctl(["cancel", "qwen-30k"], env=env, cwd=tmp_path).stdout
    deleted = {path.rsplit("/", 1)[1] for method, path, _ in fake.requests if method == "DELETE"}
    assert {f"{base_name}-{s}" for s in ("train", "eval", "spec", "mlflow", "grader")} <= deleted
    assert not any(name.startswith(("valley-fetch-", "valley-data-", "valley-lcb-")) for name in deleted), "shared"
    assert "marked KILLED" in cancelled and client.get_run(base.info.run_id).info.status == "KILLED"
    assert not any(name.startswith(continued.data.tags["valley.run_name"]) for name in deleted)


def test_api_errors_are_one_line_naming_the_object(ctl, tmp_path, cluster, mlflow_server):
    fake, kubeconfig = cluster
    fake.fail[("POST", "jobs")] = 403
    code, _, err = ctl(["launch", "--size", "1k", "--model", "llama"], env_for(kubeconfig, tmp_path, mlflow_server))
    assert code == 1
    (line,) = err.splitlines()
    assert re.fullmatch(r"error: Job valley/valley-fetch-llama-[0-9a-f]{8}: forbidden: your account may not do "
                        r"this in namespace valley; apply k8s/base \(RBAC\) or ask an admin", line)


def test_reconcile_records_runs_applied_from_git(ctl, tmp_path, cluster, mlflow_server):
    from manager.render import RenderContext, render_run
    from manager.study import valley_study

    fake, kubeconfig = cluster
    run = next(r for r in valley_study() if r.label == "llama-30k")
    for obj in render_run(run, RenderContext()):  # what Argo CD or Flux applies from the repo
        fake.objects[(obj["kind"].lower() + "s", obj["metadata"]["name"])] = obj
    env = env_for(kubeconfig, tmp_path, mlflow_server)
    code, out, err = ctl(["reconcile"], env)
    assert code == 0, err
    client = MlflowClient(mlflow_server)
    (record,) = client.search_runs([client.get_experiment_by_name("valley-valley").experiment_id],
                                   f"tags.`valley.spec_hash` = '{run.spec_hash}'")
    created = fake.objects[("configmaps", f"{run.name}-mlflow")]
    assert created["data"]["run_id"] == record.info.run_id and f"MLflow run {record.info.run_id} created" in out
    posts = len([r for r in fake.requests if r[0] == "POST"])
    assert ctl(["reconcile"], env)[0] == 0
    assert len([r for r in fake.requests if r[0] == "POST"]) == posts, "the second pass creates nothing"


def test_launching_the_study_creates_one_fetch_per_student_and_one_build_per_subset(ctl, tmp_path, cluster, mlflow_server):
    """The whole study at once, then again: shared data Jobs are created once and found after."""
    from manager.study import valley_study

    fake, kubeconfig = cluster
    env = env_for(kubeconfig, tmp_path, mlflow_server)
    code, out, err = ctl(["launch", "--study", "valley"], env)
    assert code == 0, err
    jobs = [o for (plural, _), o in fake.objects.items() if plural == "jobs"]
    shared = [j["metadata"]["labels"].get("valley.shared") for j in jobs]
    runs = valley_study()
    assert shared.count("fetch") == len({r.model.preset for r in runs}) == 2
    assert shared.count("data") == len({r.subset_dir_name for r in runs if r.data is not None}) == 10
    assert shared.count("lcb") == 1
    assert shared.count(None) == 14 * 2 + 2  # each run's own train and eval Jobs (baselines: eval only)
    objects = len(fake.objects)
    code, out, err = ctl(["launch", "--study", "valley"], env)
    assert code == 0 and len(fake.objects) == objects, err
    assert out.count(" 0 object(s) created") == len(runs)
