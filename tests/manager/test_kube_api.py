"""launch / status / logs / cancel / reconcile through the real `kubernetes` client.

No cluster runs on these machines, so the client talks to the local HTTP server of
tests/manager/conftest.py that speaks the subset of the Kubernetes API valleyctl uses; the
tests assert the request bodies it received. MLflow is a real `mlflow server` over sqlite,
since launch records where the pods log.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient


@pytest.mark.parametrize(
    "args",
    [
        ["launch", "--size", "10k", "--model", "llama"],
        ["status", "--executor", "k8s"],
        ["reconcile"],
        ["cancel", "qwen-10k"],
        ["logs", "qwen-10k"],
    ],
)
def test_without_a_cluster_one_line_names_the_fix(valleyctl, tmp_path, args):
    env = {"KUBECONFIG": str(tmp_path / "absent"), "HOME": str(tmp_path)}
    result = valleyctl(args, env=env, cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: no Kubernetes cluster configured: no kubeconfig (KUBECONFIG or ~/.kube/config) and not inside a "
        "cluster; point KUBECONFIG at your cluster, or run on this machine with --executor local"
    ]


def test_launch_needs_the_clusters_mlflow(ctl, tmp_path, cluster, monkeypatch, kube_env):
    fake, kubeconfig = cluster
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, err = ctl(["launch", "--size", "10k", "--model", "llama"], kube_env(kubeconfig, tmp_path))
    assert code == 1 and "port-forward svc/valley-mlflow" in err
    assert fake.requests == []


@pytest.mark.parametrize(
    "images, why",
    [
        ({}, "has no registry"),  # what render falls back to before any build: valley-trainer:<content tag>
        ({"trainer": "registry.example.com/ml/valley-trainer:0123456789abcdef"}, "is not pushed"),
    ],
)
def test_launch_refuses_images_a_node_cannot_pull(ctl, tmp_path, cluster, mlflow_server, kube_env, images, why):
    from tests.manager.conftest import PUSHED

    fake, kubeconfig = cluster
    env = kube_env(kubeconfig, tmp_path, mlflow_server)
    Path(env["VALLEY_PROFILE"]).write_text(json.dumps({"images": {**PUSHED, **images}} if images else {}))
    code, _, err = ctl(["launch", "--size", "10k", "--model", "llama"], env)
    assert code == 1
    (line,) = err.splitlines()
    assert why in line and "valleyctl images build --registry R --push" in line
    assert fake.requests == []
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("valley-valley")
    assert experiment is None or not client.search_runs([experiment.experiment_id], "tags.`valley.label` = 'llama-10k'")


def test_launch_takes_node_loaded_images_with_the_cpu_profile(ctl, tmp_path, cluster, mlflow_server, kube_env):
    """`--profile cpu`: the images were loaded into the nodes (kind load, k3d image import), so launch
    takes `valley-trainer-cpu:<tag>` without a registry or a digest, and no container pulls."""
    fake, kubeconfig = cluster
    env = kube_env(kubeconfig, tmp_path, mlflow_server)
    code, _, err = ctl(["launch", "--study", "mini", "--run", "tiny-qwen-40", "--profile", "cpu"], env)
    assert code == 0, err
    jobs = [obj for (plural, _), obj in fake.objects.items() if plural == "jobs"]
    containers = [c for job in jobs for c in job["spec"]["template"]["spec"]["containers"]]
    assert len(jobs) == 5 and {c["imagePullPolicy"] for c in containers} == {"Never"}
    assert {c["image"].split(":")[0] for c in containers} == {"valley-trainer-cpu", "valley-evaluator-cpu"}


def test_launch_reconcile_status_logs_cancel(ctl, tmp_path, cluster, mlflow_server, kube_env):
    fake, kubeconfig = cluster
    env = kube_env(kubeconfig, tmp_path, mlflow_server)

    def valleyctl(args, env, cwd):
        code, out, err = ctl(args, env)
        assert code == 0, err
        return subprocess.CompletedProcess(args, code, out, err)

    out = valleyctl(["launch", "--run", "qwen-30k+easy-4k"], env=env, cwd=tmp_path).stdout
    client = MlflowClient(mlflow_server)
    runs = {
        r.data.tags["valley.label"]: r
        for r in client.search_runs(
            [client.get_experiment_by_name("valley-valley").experiment_id], "tags.`valley.kind` = 'run'"
        )
    }
    assert set(runs) == {"qwen-30k", "qwen-30k+easy-4k"}, "the base run is launched with its dependant"
    base, continued = runs["qwen-30k"], runs["qwen-30k+easy-4k"]
    base_name = base.data.tags["valley.run_name"]
    assert f"qwen-30k: {base_name}, new MLflow run {base.info.run_id}" in out and "next: valleyctl status" in out

    posts = {
        body["metadata"]["name"]: body
        for method, path, body in fake.requests
        if method == "POST" and "dryRun" not in path
    }
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
        "metadata": {
            "name": f"{base_name}-data-x1",
            "labels": {"valley.run": base_name, "app.kubernetes.io/component": "data"},
        },
        "spec": {"containers": [{"name": "data-build"}], "initContainers": [{"name": "model-fetch"}]},
        "status": {"phase": "Succeeded"},
    }
    fake.logs.update(
        {(f"{base_name}-data-x1", c): f"log of {base_name}-data-x1" for c in ("model-fetch", "data-build")}
    )
    logs = valleyctl(["logs", "qwen-30k"], env=env, cwd=tmp_path).stdout
    assert f"==> {base_name}-data-x1/model-fetch <==" in logs and f"log of {base_name}-data-x1" in logs

    cancelled = valleyctl(["cancel", "qwen-30k"], env=env, cwd=tmp_path).stdout
    deleted = {path.rsplit("/", 1)[1] for method, path, _ in fake.requests if method == "DELETE"}
    assert {f"{base_name}-{s}" for s in ("train", "eval", "spec", "mlflow", "grader")} <= deleted
    assert not any(name.startswith(("valley-fetch-", "valley-data-", "valley-lcb-")) for name in deleted), "shared"
    assert "marked KILLED" in cancelled and client.get_run(base.info.run_id).info.status == "KILLED"
    assert not any(name.startswith(continued.data.tags["valley.run_name"]) for name in deleted)


def test_api_errors_are_one_line_naming_the_object(ctl, tmp_path, cluster, mlflow_server, kube_env):
    fake, kubeconfig = cluster
    fake.fail[("POST", "jobs")] = 403
    code, _, err = ctl(["launch", "--size", "1k", "--model", "llama"], kube_env(kubeconfig, tmp_path, mlflow_server))
    assert code == 1
    (line,) = err.splitlines()
    assert re.fullmatch(
        r"error: Job valley/valley-fetch-llama-[0-9a-f]{8}: forbidden by RBAC: system:serviceaccount:valley:tester "
        r"may not create jobs.batch in namespace valley; apply the kit's Roles \(k8s/base/rbac.yaml\) or ask an admin",
        line,
    )


def test_isolation_pod_renders_and_launches_the_grader_as_a_sidecar(ctl, tmp_path, cluster, mlflow_server, kube_env):
    import yaml

    fake, kubeconfig = cluster
    env = kube_env(kubeconfig, tmp_path, mlflow_server)
    args = ["--size", "10k", "--model", "qwen", "--isolation", "pod"]
    code, out, err = ctl(["render", *args], env)
    assert code == 0, err
    rendered = [obj for obj in yaml.safe_load_all(out) if obj]
    assert not [o for o in rendered if o["kind"] in ("Deployment", "NetworkPolicy")]
    (evaluation,) = [o for o in rendered if o["metadata"]["name"].endswith("-eval")]
    pod = evaluation["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "gvisor-nvproxy"
    assert [c["name"] for c in pod["initContainers"] if c.get("restartPolicy") == "Always"] == ["grader"]
    code, out, err = ctl(["launch", *args], env)
    assert code == 0, err
    assert fake.objects[("jobs", evaluation["metadata"]["name"])]["spec"]["template"]["spec"]["runtimeClassName"] == (
        "gvisor-nvproxy"
    )
    assert not [key for key in fake.objects if key[0] in ("deployments", "networkpolicies")]


def test_reconcile_records_runs_applied_from_git(ctl, tmp_path, cluster, mlflow_server, kube_env):
    from manager.render import RenderContext, render_run
    from manager.study import valley_study

    fake, kubeconfig = cluster
    run = next(r for r in valley_study() if r.label == "llama-30k")
    for obj in render_run(run, RenderContext()):  # what Argo CD or Flux applies from the repo
        fake.objects[(obj["kind"].lower() + "s", obj["metadata"]["name"])] = obj
    env = kube_env(kubeconfig, tmp_path, mlflow_server)
    code, out, err = ctl(["reconcile"], env)
    assert code == 0, err
    client = MlflowClient(mlflow_server)
    (record,) = client.search_runs(
        [client.get_experiment_by_name("valley-valley").experiment_id], f"tags.`valley.spec_hash` = '{run.spec_hash}'"
    )
    created = fake.objects[("configmaps", f"{run.name}-mlflow")]
    assert created["data"]["run_id"] == record.info.run_id and f"MLflow run {record.info.run_id} created" in out
    posts = len([r for r in fake.requests if r[0] == "POST"])
    assert ctl(["reconcile"], env)[0] == 0
    assert len([r for r in fake.requests if r[0] == "POST"]) == posts, "the second pass creates nothing"


def test_launching_the_study_creates_one_fetch_per_student_and_one_build_per_subset(
    ctl, tmp_path, cluster, mlflow_server, kube_env
):
    """The whole study at once, then again: shared data Jobs are created once and found after."""
    from manager.study import valley_study

    fake, kubeconfig = cluster
    env = kube_env(kubeconfig, tmp_path, mlflow_server)
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


@pytest.mark.parametrize(
    "server, args",
    [
        ("refused", ["launch", "--run", "qwen-1k"]),
        ("refused", ["status", "--executor", "k8s"]),
        ("refused", ["compare"]),
        ("refused", ["reconcile"]),
        ("silent", ["launch", "--run", "qwen-1k"]),
    ],
    ids=["launch", "status", "compare", "reconcile", "silent-launch"],
)
def test_an_mlflow_server_that_does_not_answer_fails_fast_naming_the_uri(
    ctl, tmp_path, cluster, kube_env, server, args
):
    """A port that refuses connections, or a server that accepts them and never replies (hung or
    firewalled: only the health check's 5 s timeout bounds the wait). Seen failing at 8a1d673, before
    the check: MLflow's client retried for minutes, then a raw MlflowException. The bound below is ten
    times the check's timeout, far under those minutes."""
    import socket
    import time

    fake, kubeconfig = cluster
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        if server == "silent":
            sock.listen(16)  # the kernel completes handshakes; nothing ever reads or answers
        dead_tracking_uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
        started = time.monotonic()
        code, _, err = ctl(args, kube_env(kubeconfig, tmp_path, dead_tracking_uri))
    assert code == 1 and time.monotonic() - started < 50
    (line,) = err.splitlines()
    assert f"the MLflow server at {dead_tracking_uri} does not answer" in line
    assert "port-forward svc/valley-mlflow" in line and "--tracking-uri" in line
    assert not [r for r in fake.requests if r[0] in ("POST", "PATCH", "DELETE") and "dryRun" not in r[1]]
