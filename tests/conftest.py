"""Shared fixtures: the real CLIs as subprocesses, a real sqlite MLflow store, golden files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def require_tool(name: str, install: str) -> str:
    """Path of a tool `make setup` installs. Missing, it fails the test rather than skipping it:
    set-up is broken, and a skip would let the test pass without checking anything."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail(f"{name} is missing although `make setup` installs it ({install}); rerun `make setup`")
    return found


def require_uid_switch() -> str:
    """The system python3 for grading as uid 65534 through setpriv. The tests need root (CI runs as
    root); missing, they fail rather than skip, so the non-root path is never passed unchecked."""
    system_python = "/usr/bin/python3"
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.access(system_python, os.X_OK):
        pytest.fail(
            "needs root (to switch to uid 65534), setpriv (util-linux) and /usr/bin/python3; run the tests as root"
        )
    return system_python


def python_as_nobody(system_python: str, script: str, args: list, env: dict, timeout: float):
    """`system_python -I -c SCRIPT ARGS` as uid/gid 65534 with no groups (setpriv), as a non-root
    grader image runs: only what env gives it, output captured."""
    command = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", system_python, "-I", "-c", script]
    return subprocess.run([*command, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)


def grader_cli_entry(package_dir: Path) -> str:
    """A script that runs `python -m valley.grader` from the copy of the grader package in package_dir."""
    return (
        f"import sys; sys.path.insert(0, {str(package_dir)!r}); "
        "from valley.grader.__main__ import main; sys.exit(main())"
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files instead of comparing")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


MLFLOW_TARGET_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")


def _mlflow_process_state() -> tuple:
    """What in-process MLflow calls can leave behind for every later test in this process: the
    variables that say where to log (not MLflow's tuning settings), the global tracking URI and the
    active run."""
    env = tuple(sorted((k, os.environ[k]) for k in MLFLOW_TARGET_VARIABLES if k in os.environ))
    if "mlflow" not in sys.modules:
        return env, None, None
    import mlflow
    from mlflow.tracking._tracking_service import utils

    active = mlflow.active_run()
    return env, utils._tracking_uri, active and active.info.run_id


@pytest.fixture(autouse=True)
def no_leaked_mlflow_state():
    """A test that leaves MLflow's process-wide state changed fails, and the state is put back: a
    tracking URI left pointing at a stopped server once failed 13 unrelated tests later in the run."""
    before = _mlflow_process_state()
    yield
    after = _mlflow_process_state()
    if after == before:
        return
    import mlflow

    while mlflow.active_run() is not None and mlflow.active_run().info.run_id != before[2]:
        mlflow.end_run()
    mlflow.set_tracking_uri(before[1])
    for key in MLFLOW_TARGET_VARIABLES:
        os.environ.pop(key, None)
    os.environ.update(dict(before[0]))
    pytest.fail(f"the test left MLflow's process state changed: {before} -> {after}")


@pytest.fixture
def mlflow_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _cli(module: str, args: list[str], env: dict | None, cwd: Path | None, check: bool, timeout: float):
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{module} {' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture
def valley():
    """Run the real `valley` CLI: valley(["grade", ...], env=..., check=False)."""
    return lambda args, env=None, cwd=None, check=True, timeout=600: _cli("valley", args, env, cwd, check, timeout)


@pytest.fixture
def valleyctl():
    """Run the real `valleyctl` CLI."""
    return lambda args, env=None, cwd=None, check=True, timeout=600: _cli("manager", args, env, cwd, check, timeout)


@pytest.fixture
def grader_sidecar():
    """`valley grader serve` on a free loopback port, as the eval pod's sidecar runs it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "valley", "grader", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
