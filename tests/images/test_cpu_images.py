"""The CPU images built for real as a fresh clone's `make test` builds them, and started as their
rendered pods run them.

Built through `valleyctl images build --variant cpu` by a real dockerd from a Debian bookworm base
that the set-up made with mmdebstrap from the Debian mirror (no container registry), every Python
package from the set-up's wheelhouse alone. Then each image runs a rendered container of
`valleyctl render --study mini --profile cpu` with that pod's security context (uid 10001, read-only
root, no capabilities), its volumes and, for the grader, gVisor (runsc): the trainer fetches a tiny
student onto its volume, the evaluator loads vLLM, the grader passes its own `in-gvisor` check and
grades, the control image serves MLflow on sqlite as the CPU kit runs it. The engine keeps its
layers between sessions (tests/images/conftest.py), so only changed sources are rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from manager.images import PROJECT_ROOT
from tests.images.conftest import CACHE, wait_for
from tests.images.pod_runner import claim_dir, run_kwargs

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.runsc]

INPUTS = CACHE / "image-inputs"  # the Makefile's IMAGE_INPUTS
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", ".valley", "mlruns", "*.db", "__pycache__", ".pytest_cache")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def clone_cli(clone: Path, args: list, docker_host: str, timeout: float) -> subprocess.CompletedProcess:
    """The clone's own valleyctl: its images/digests.json and k8s/profiles are the ones read."""
    env = {**os.environ, "PYTHONPATH": str(clone), "DOCKER_HOST": docker_host}
    result = subprocess.run(
        [sys.executable, "-m", "manager", *map(str, args)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"valleyctl {' '.join(map(str, args))}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def cpu_build(docker_host, kept_images, tmp_path_factory):
    """A copy of the project, its CPU images built from the Debian base: (clone, client, base ref)."""
    import docker

    tar, wheelhouse = INPUTS / "debian-bookworm-python.tar", INPUTS / "wheelhouse"
    if not tar.is_file() or not any(wheelhouse.glob("*.whl")):
        pytest.fail(f"{tar} or {wheelhouse} is missing although `make setup` makes them; rerun `make setup`")
    client = docker.DockerClient(base_url=docker_host, timeout=1800)
    # named by the tarball's content: imported once, so its image id (and every layer's cache) stays
    base = f"valley-test-base:bookworm-{file_digest(tar)[:12]}"
    if not client.images.list(name=base):
        client.api.import_image_from_file(str(tar), repository=base.split(":")[0], tag=base.split(":")[1])
    clone = tmp_path_factory.mktemp("clone") / "valley"
    shutil.copytree(PROJECT_ROOT, clone, ignore=COPY_IGNORE)
    (clone / "images" / "digests.json").write_text("{}\n")
    clone_cli(
        clone,
        ["images", "build", "--variant", "cpu", "--base", base, "--wheelhouse", wheelhouse],
        docker_host,
        timeout=1500,
    )
    recorded = json.loads((clone / "images" / "digests.json").read_text())
    kept_images.update({base, *(f"{entry['repository']}:{entry['tag']}" for entry in recorded.values())})
    return clone, client, base


@pytest.fixture(scope="module")
def mini_pods(cpu_build, docker_host):
    """Rendered pod specs of one mini run with the CPU profile, by container name."""
    clone, _client, _base = cpu_build
    args = ["render", "--study", "mini", "--profile", "cpu", "--run", "tiny-qwen-40"]
    rendered = clone_cli(clone, args, docker_host, 120)
    pods = {}
    for obj in yaml.safe_load_all(rendered.stdout):
        if obj["kind"] in ("Job", "Deployment"):
            pod = obj["spec"]["template"]["spec"]
            for container in pod["containers"]:
                pods[container["name"]] = pod
    return pods


@pytest.mark.timeout(1800)
def test_the_cpu_variant_builds_from_a_debian_base_and_records_it(cpu_build):
    clone, client, base = cpu_build
    recorded = json.loads((clone / "images" / "digests.json").read_text())
    assert set(recorded) == {"trainer-cpu", "evaluator-cpu", "grader", "control"}
    base_id = client.images.get(base).id
    for entry in recorded.values():
        assert entry["base"] == base and entry["base_id"] == base_id, entry
        image = client.images.get(f"{entry['repository']}:{entry['tag']}")
        assert image.id == entry["image_id"] and image.attrs["Config"]["User"] == "10001:10001"


def run_container(client, kwargs: dict, timeout: float = 300) -> tuple[int, str]:
    container = client.containers.run(**kwargs)
    try:
        status = container.wait(timeout=timeout)["StatusCode"]
        return status, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


@pytest.mark.timeout(1800)
def test_the_trainer_fetches_a_student_onto_its_volume_as_the_rendered_pod(cpu_build, mini_pods, tmp_path):
    _clone, client, _base = cpu_build
    pod = mini_pods["model-fetch"]
    (container,) = pod["containers"]
    status, logs = run_container(client, run_kwargs(pod, container, tmp_path))
    assert status == 0, logs
    student = claim_dir(tmp_path, "valley-model-cache", 10001) / "tiny-qwen"
    assert (student / "config.json").is_file() and any(student.glob("*.safetensors")), logs
    assert student.stat().st_uid == 10001  # written by the pod's user, on a volume it shares through fsGroup


@pytest.mark.timeout(1800)
def test_the_evaluator_loads_vllm_under_a_read_only_root(cpu_build, mini_pods, tmp_path):
    _clone, client, _base = cpu_build
    pod = mini_pods["eval"]
    (container,) = pod["containers"]
    kwargs = run_kwargs(pod, container, tmp_path)
    versions = "import vllm, torch, valley.eval; print(vllm.__version__, torch.__version__)"
    kwargs["entrypoint"] = ["python", "-c", versions]
    status, logs = run_container(client, kwargs)
    assert status == 0 and "0.32.0 2.13.0+cpu" in logs, logs


@pytest.mark.timeout(1800)
def test_the_grader_passes_its_gvisor_check_under_runsc_and_grades(cpu_build, mini_pods, tmp_path):
    _clone, client, _base = cpu_build
    pod = mini_pods["grader"]
    assert pod["runtimeClassName"] == "gvisor"
    (container,) = pod["containers"]
    server = client.containers.run(**run_kwargs(pod, container, tmp_path))
    try:
        probe = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/healthz').read().decode())"

        def healthy() -> bool:
            server.reload()
            assert server.status == "running", server.logs().decode(errors="replace")
            return server.exec_run(["python", "-c", probe]).exit_code == 0

        wait_for(healthy, 60, "the grader's /healthz")
        health = json.loads(server.exec_run(["python", "-c", probe]).output)
        assert health["sandbox"] == "in-gvisor", health
        grade = (
            "import json; from valley.grader.client import grade_remote; "
            "case = {'input': '2 3\\n', 'output': '5\\n', 'testtype': 'stdin'}; "
            "problem = {'question_id': 'add', 'question_title': 'add', 'question_content': 'a+b', "
            "'platform': 'atcoder', 'contest_id': 'c', 'contest_date': '2024-09-01T00:00:00', 'starter_code': '', "
            "'difficulty': 'easy', 'public_test_cases': json.dumps([case]), 'private_test_cases': json.dumps([case]), "
            "'metadata': '{}'}; "
            "fence = chr(96) * 3; "
            "right = fence + 'python\\na, b = map(int, input().split())\\nprint(a + b)\\n' + fence; "
            "wrong = fence + 'python\\nprint(0)\\n' + fence; "
            "grade_remote('http://127.0.0.1:8000', [problem], [{'question_id': 'add', 'sample_id': 0, "
            "'response': right}, {'question_id': 'add', 'sample_id': 1, 'response': wrong}], '/tmp/v.jsonl'); "
            "print([json.loads(line)['passed'] for line in open('/tmp/v.jsonl')])"
        )
        graded = server.exec_run(["python", "-c", grade])
        assert graded.exit_code == 0 and graded.output.decode().strip() == "[True, False]", graded.output
    finally:
        server.remove(force=True)


@pytest.mark.timeout(1800)
def test_the_control_image_serves_mlflow_on_sqlite_as_the_cpu_kit_runs_it(cpu_build, tmp_path):
    clone, client, _base = cpu_build
    built = subprocess.run(["kubectl", "kustomize", clone / "k8s" / "overlays" / "cpu"], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    objects = list(yaml.safe_load_all(built.stdout))
    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "valley-mlflow")
    settings = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("valley-mlf"))
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    control = json.loads((clone / "images" / "digests.json").read_text())["control"]
    container = {**container, "image": f"{control['repository']}:{control['tag']}"}
    kwargs = run_kwargs(pod, container, tmp_path, env=settings["data"])
    server = client.containers.run(**kwargs)
    try:
        probe = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:5000/health').read().decode())"

        def healthy() -> bool:
            server.reload()
            assert server.status == "running", server.logs().decode(errors="replace")
            return server.exec_run(["python", "-c", probe]).exit_code == 0

        wait_for(healthy, 120, "MLflow's /health")
        reconciler = server.exec_run(["valleyctl", "--help"])
        assert reconciler.exit_code == 0 and b"reconcile" in reconciler.output
    finally:
        server.remove(force=True)
    assert (claim_dir(tmp_path, "valley-mlflow", 10001) / "mlflow.db").is_file()
