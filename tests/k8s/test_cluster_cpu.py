"""The CPU path: the kit's CPU overlay (MLflow on sqlite on a volume, no Secret) and the CPU cluster
profile, rendered for the mini study through the real CLI exactly as a user types it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from manager.images import content_tag
from manager.mlflow_ui import free_port
from manager.profile import KIT_PROFILES, ClusterProfile, load_profile
from manager.study import mini_study
from tests.k8s.k8s_checks import assert_hardened, pod_specs, validate_strict
from tests.k8s.kustomize_builds import built

#: the smallest node the CPU profile is sized for
NODE_CPU_MILLI, NODE_MEMORY_MI = 2000, 8192


def kinds(objects) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def milli(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def mebi(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}
    return float(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else float(quantity) / 2**20


def test_every_kit_profile_validates():
    names = sorted(path.stem for path in KIT_PROFILES.glob("*.yaml"))
    assert "cpu" in names
    for name in names:
        assert isinstance(load_profile(name), ClusterProfile)


def test_a_profile_name_the_kit_does_not_ship_is_one_line(valleyctl):
    result = valleyctl(["render", "--study", "mini", "--profile", "tpu"], check=False)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "neither a file nor a profile of the kit (cpu)" in result.stderr


def test_the_cpu_overlay_runs_mlflow_on_a_volume_with_no_secret_and_no_gpu_runtime():
    objects = kinds(built("overlays/cpu"))
    deployment = objects[("Deployment", "valley-mlflow")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # one writer of the sqlite file
    assert container["command"] == ["mlflow", "server"] and "--serve-artifacts" in container["args"]
    assert not [v for v in pod["volumes"] if "secret" in v] and not any(k == "Secret" for k, _ in objects)
    store = next(v for v in pod["volumes"] if v["name"] == "store")["persistentVolumeClaim"]["claimName"]
    assert {"name": "store", "mountPath": "/mlflow"} in container["volumeMounts"]
    assert objects[("PersistentVolumeClaim", store)]["spec"]["accessModes"] == ["ReadWriteOnce"]
    settings = next(o for (kind, name), o in objects.items() if kind == "ConfigMap" and name.startswith("valley-mlf"))
    assert settings["data"]["MLFLOW_BACKEND_STORE_URI"] == "sqlite:////mlflow/mlflow.db"
    assert settings["data"]["MLFLOW_ARTIFACTS_DESTINATION"] == "/mlflow/artifacts"
    assert ("RuntimeClass", "gvisor") in objects and ("RuntimeClass", "gvisor-nvproxy") not in objects


@pytest.mark.slow
def test_the_cpu_overlays_mlflow_command_serves_from_its_volume(tmp_path: Path):
    """The Deployment's command, args and environment as built, the volume a local directory."""
    objects = kinds(built("overlays/cpu"))
    container = objects[("Deployment", "valley-mlflow")]["spec"]["template"]["spec"]["containers"][0]
    settings = next(o for (kind, name), o in objects.items() if kind == "ConfigMap" and name.startswith("valley-mlf"))
    volume = tmp_path / "mlflow"
    volume.mkdir()
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item} | settings["data"]
    env = {key: value.replace("/mlflow/", f"{volume}/") for key, value in env.items()} | {"HOME": str(tmp_path)}
    port = free_port()
    args = [a for a in container["args"] if not a.startswith(("--host=", "--port="))] + [
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    mlflow = Path(sys.executable).parent / container["command"][0]
    server = subprocess.Popen(
        [str(mlflow), *container["command"][1:], *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        from mlflow import MlflowClient

        # a client of its own: mlflow.set_tracking_uri would point every later test in this process here
        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                experiment = client.create_experiment("cpu-kit")
                break
            except Exception:  # not serving yet
                assert time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        run = client.create_run(experiment)
        client.log_text(run.info.run_id, "artifact through the server", "note.txt")
        client.set_terminated(run.info.run_id)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (volume / "mlflow.db").is_file() and list((volume / "artifacts").rglob("note.txt"))


@pytest.fixture(scope="module")
def mini_cpu(tmp_path_factory) -> list[dict]:
    """`valleyctl render --study mini --profile cpu`: what launch creates (its --dry-run now also
    asks a cluster and an MLflow server, which this test has neither of)."""
    cwd = tmp_path_factory.mktemp("launch")
    result = subprocess.run(
        [sys.executable, "-m", "manager", "render", "--study", "mini", "--profile", "cpu"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.returncode == 0, result.stderr
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def test_launch_with_the_cpu_profile_renders_the_whole_mini_study_without_gpus(mini_cpu):
    evals = [o for o in mini_cpu if o["kind"] == "Job" and o["metadata"]["name"].endswith("-eval")]
    assert len(evals) == len(mini_study()) == 12
    # what images/digests.json records (or the sources hash to): the CPU trainer and evaluator
    cpu_refs = {f"valley-{name}:{content_tag(name)}" for name in ("trainer-cpu", "evaluator-cpu", "grader")}
    for obj in mini_cpu:
        validate_strict(obj)
        for pod in pod_specs(obj):
            assert_hardened(pod)
            assert "tolerations" not in pod and "nodeSelector" not in pod, obj["metadata"]["name"]
            for container in pod["containers"] + pod.get("initContainers", []):
                resources = container["resources"]
                assert not any("gpu" in key for part in resources.values() for key in part), container["name"]
                assert container["imagePullPolicy"] == "Never"
                assert container["image"] in cpu_refs, container["image"]


def test_the_cpu_profile_schedules_the_mini_study_on_one_two_core_node(mini_cpu):
    """Every run's grader waits from launch on; beside them, MLflow and the largest step must fit
    the smallest node the profile is sized for (a kubelet then runs the rest as room frees up)."""
    mlflow = kinds(built("overlays/cpu"))[("Deployment", "valley-mlflow")]["spec"]["template"]["spec"]
    graders = [pod for o in mini_cpu if o["kind"] == "Deployment" for pod in pod_specs(o)]
    steps = [pod for o in mini_cpu if o["kind"] == "Job" for pod in pod_specs(o)]

    def requests(pod: dict) -> tuple[float, float]:
        containers = pod["containers"] + pod.get("initContainers", [])
        cpu = sum(milli(c["resources"]["requests"]["cpu"]) for c in containers)
        return cpu, sum(mebi(c["resources"]["requests"]["memory"]) for c in containers)

    waiting = [requests(pod) for pod in graders + [mlflow]]
    largest = max((requests(pod) for pod in steps), key=lambda r: r[0])
    assert sum(cpu for cpu, _ in waiting) + largest[0] <= NODE_CPU_MILLI
    assert sum(memory for _, memory in waiting) + largest[1] <= NODE_MEMORY_MI


def test_the_rq2_data_pods_grader_sidecar_passes_its_probes_as_a_kubelet_runs_them(mini_cpu):
    """The sidecar listens on the pod's loopback only; a kubelet dials network probes at the pod's
    IP, which it never answers (on a real node the RQ2 data pods restarted the grader for hours,
    'Startup probe failed: dial tcp 10.244.0.87:8000: connect: connection refused')."""
    sidecars = [
        container
        for obj in mini_cpu
        if obj["kind"] == "Job"
        for pod in pod_specs(obj)
        for container in pod.get("initContainers", [])
        if container["name"] == "grader"
    ]
    assert sidecars, "the mini study has RQ2 (correct/incorrect) data pods with a grader sidecar"
    result = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.k8s.probes_in_netns"],
        input=json.dumps(sidecars[0]),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert "grader serving on http://127.0.0.1:" in outcome["grader"], outcome
    assert not any(outcome["before"].values()), outcome  # nothing answers before the grader serves
    assert all(outcome["serving"].values()), outcome
