"""A real Docker engine (Debian's docker.io dockerd, started here on a private socket, runsc as
an extra runtime) and a real registry on loopback (Debian's docker-registry), shared by a session."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import require_tool

#: the machine's valley cache (the Makefile's VALLEY_CACHE): what it holds is named by content, so
#: every clone on the machine shares it
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "valley"
#: the engine's data root: built layers are the CPU image build's cache, reused by later sessions
#: and other clones (a session keeps only the images it used: `kept_images`)
DATA_ROOT = CACHE / "docker-data"


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


def prune(client, kept_images: set[str]) -> None:
    """Remove the valley images this session did not keep (earlier builds of changed sources,
    the scratch images of the build tests): the layers still in use stay as cache."""
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(("valley-", "valley-test-base")) and tag not in kept_images:
                client.images.remove(tag, noprune=False)
    client.images.prune(filters={"dangling": True})


@pytest.fixture(scope="session")
def kept_images() -> set[str]:
    """Image refs this session used and keeps in the cache (the base and the CPU images it built)."""
    return set()


@pytest.fixture(scope="session")
def docker_host(kept_images):
    """dockerd with its own exec root, pidfile and socket; no iptables, no bridge; runsc as the
    runtime `runsc` (what RuntimeClass gvisor maps to). One engine per data root at a time: a
    second session waits for the first."""
    require_tool("dockerd", "make setup (scripts/setup-system.sh test): apt-get install docker.io")
    runsc = require_tool("runsc", "make setup (scripts/setup-system.sh demo): apt-get install runsc")
    import docker

    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    lock = open(DATA_ROOT.with_name("docker-data.lock"), "w")
    deadline = time.monotonic() + 600
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.fail(f"another test session holds {DATA_ROOT} (its dockerd) for over 10 minutes")
            time.sleep(1)
    state = Path(tempfile.mkdtemp(prefix="vd", dir="/tmp"))  # short: unix socket paths are limited
    socket = f"unix://{state}/docker.sock"
    runtimes = {"runsc": {"path": runsc, "runtimeArgs": ["--network=none", "--ignore-cgroups"]}}
    (state / "daemon.json").write_text(json.dumps({"runtimes": runtimes}))
    command = [
        "dockerd",
        f"--config-file={state}/daemon.json",
        "--iptables=false",
        "--ip-masq=false",
        "--ip-forward=false",
        "--bridge=none",
        "--storage-driver=overlay2",
        f"--data-root={DATA_ROOT}",
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
        lock.close()
        pytest.fail(f"dockerd did not start (it needs root and overlay2): {tail}")
    yield socket
    prune(docker.DockerClient(base_url=socket), kept_images)
    process.terminate()
    process.wait(timeout=60)
    log.close()
    shutil.rmtree(state, ignore_errors=True)
    lock.close()


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
