"""An interrupted local launch (Ctrl-C, or SIGTERM from a CI timeout or `kill`) leaves no run
RUNNING in MLflow and no workload behind: the runs it started are KILLED with a note saying how to
resume (those it had not started yet too: nothing will start them), the study run too, and every step's
process tree is ended.
A launch killed outright (SIGKILL: `kill -9`, the out-of-memory killer) cannot do that itself; its
watcher process does the same."""

import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


def statuses(client, kind: str = "run"):
    """label -> status of the runs of one kind: cell runs ("run"), the study run ("study"); the
    stage runs below a cell (train, eval) carry its label too. kind=None: run name -> status of all."""
    experiment = client.get_experiment_by_name("valley-mini")
    if experiment is None:
        return {}
    found = client.search_runs([experiment.experiment_id])
    if kind is None:
        return {r.info.run_name: r.info.status for r in found}
    return {r.data.tags.get("valley.label"): r.info.status for r in found if r.data.tags.get("valley.kind") == kind}


def session_processes(session: int) -> str:
    return subprocess.run(["ps", "-o", "pid=,args=", "-s", str(session)], capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_an_interrupted_local_launch_kills_its_runs_and_its_steps(tmp_path, signum):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.search_experiments()  # the schema made here, not raced by two processes
    launch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "manager",
            "launch",
            "--study",
            "mini",
            "--run",
            "tiny-qwen-40",
            "--run",
            "tiny-llama-40",
            "--executor",
            "local",
            "--tracking-uri",
            uri,
            "--parallel",
            "2",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while statuses(client).get("tiny-qwen-40") != "RUNNING":
        assert launch.poll() is None and time.monotonic() < deadline, (
            launch.stdout.read() if launch.poll() is not None else "no RUNNING run in 180 s"
        )
        time.sleep(0.5)
    logs = tmp_path / ".valley" / "logs"
    while not any(logs.rglob("*.log")):  # a step's process is up
        assert launch.poll() is None and time.monotonic() < deadline, "no step started in 180 s"
        time.sleep(0.2)
    launch.send_signal(signum)
    output, _ = launch.communicate(timeout=60)
    assert launch.returncode != 0, output
    deadline = time.monotonic() + 60  # SIGKILL: the watcher ends the steps (10 s grace) and marks the runs
    while session_processes(launch.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    every_run = statuses(client, kind=None)  # stage runs included
    assert not {"RUNNING", "SCHEDULED"} & set(every_run.values()), (every_run, output)
    runs = statuses(client)
    assert runs["tiny-qwen-40"] == "KILLED" and set(statuses(client, "study").values()) <= {"KILLED"}, runs
    run = next(
        r
        for r in client.search_runs([client.get_experiment_by_name("valley-mini").experiment_id])
        if r.data.tags.get("valley.label") == "tiny-qwen-40"
    )
    note = run.data.tags["valley.status_note"]
    assert (
        "ended without closing" if signum == signal.SIGKILL else "interrupted"
    ) in note and "valleyctl launch" in note, note
    # the launch's whole session is gone: no step (or its children) outlives it
    assert not session_processes(launch.pid), session_processes(launch.pid)
