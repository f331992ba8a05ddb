"""Faults injected midway through what valleyctl does, on the fake and on a real control plane: the
MLflow server stopped in the middle of a launch, the API server unavailable in the middle of a
reconcile (503, or connections refused), a quota and an RBAC refusal midway through a launch, the
reconciler killed (SIGKILL) mid-pass and run again.

The command facing a fault ends with exit status 1 and one line naming the cause and what is left.
After the repair a user or the in-cluster CronJob makes (start MLflow again, the next reconcile pass)
the audit finds no orphan object and no MLflow run in a wrong state. Each fault is counted in
faults.LEDGER, printed at the end of the session. The runs are the mini study's, which no other
e2e module launches: records are found by spec, and the tracking server lives for the session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e import kubelet
from tests.e2e.conftest import wait_for
from tests.e2e.faults import LEDGER, VALLEYCTL_MADE, ApiProxy, Fault, audit, mlflow_call, tagged
from tests.e2e.test_control_plane import LAUNCHER, RECONCILER, ok, run_shared

ROOT = Path(__file__).resolve().parents[2]


def record(tracking: str, label: str):
    from tests.e2e.test_control_plane import record as newest

    return newest(tracking, label, study="mini")


def one_line(result, *causes: str) -> bool:
    """Exit status 1 and a single line on stderr naming every cause."""
    code, _, err = result
    return code == 1 and len(err.splitlines()) == 1 and all(cause in err for cause in causes)


def settle(plane, as_account, tracking: str, fault: str, survived: bool) -> None:
    """The next reconcile pass (as the CronJob runs it), then the audit; the fault counted."""
    ok(as_account(RECONCILER, ["reconcile"]))
    problems = audit(plane, tracking)
    LEDGER.append(Fault(plane.kind, fault, survived, len(problems)))
    assert survived and problems == []


def objects_in(plane) -> list[str]:
    from manager.backends.kube import RUN_KINDS, Kube

    kube = Kube(plane.admin, plane.namespace)
    return [f"{kind} {o['metadata']['name']}" for kind in RUN_KINDS for o in kube.list(kind, VALLEYCTL_MADE)]


def test_mlflow_stopped_in_the_middle_of_a_launch(control_plane, as_account, flaky_tracking):
    """Stopped when the launch records its second run: the first run's objects are deleted, the run it
    cannot delete is said to be left, recorded `pending`. Once MLflow is back the reconciler marks it
    KILLED after the launch's deadline (moved into the past here, as 20 minutes would), and a relaunch
    starts both runs."""
    from manager.study import ordered, study_runs

    tracking = flaky_tracking.url
    first, second = [r for r in ordered(study_runs("mini")) if r.label in ("tiny-qwen-40", "tiny-llama-40")]
    stop = flaky_tracking.on(mlflow_call("runs/create", run_name=second.label), flaky_tracking.stop)
    result = as_account(LAUNCHER, ["launch", "--study", "mini", "--run", first.label, "--run", second.label])
    assert stop.fired.is_set()
    survived = one_line(result, f"the MLflow server at {tracking} does not answer", "launch partly undone")
    assert survived, result[2]
    assert objects_in(control_plane) == [], "every object the launch created is deleted"
    flaky_tracking.start()
    left = record(tracking, first.label)
    assert f"left: MLflow run {left.info.run_id} ({first.label}, recorded as a launch that did not" in result[2]
    assert left.data.tags["valley.launch"] == "pending" and record(tracking, second.label) is None
    MlflowClient(tracking).set_tag(left.info.run_id, "valley.launch_deadline", "2000-01-01T00:00:00Z")
    out = ok(as_account(RECONCILER, ["reconcile"]))
    assert f"{first.name}: MLflow SCHEDULED -> KILLED: launch did not complete" in out
    out = ok(as_account(LAUNCHER, ["launch", "--study", "mini", "--run", first.label, "--run", second.label]))
    assert f"(attempt 2 after KILLED run {left.info.run_id})" in out
    settle(control_plane, as_account, tracking, "mlflow stopped mid-launch", survived)


def ended_run(plane, as_account, tracking: str, label: str, exit_code: int):
    """A mini run launched, its shared Jobs run, its last Job (eval of a baseline, else train) ended."""
    ok(as_account(LAUNCHER, ["launch", "--study", "mini", "--run", label]))
    run = record(tracking, label)
    name = run.data.tags["valley.run_name"]
    run_shared(plane, name, as_account)
    ok(as_account(RECONCILER, ["reconcile"]))
    job = f"{name}-eval" if label.endswith("baseline") else f"{name}-train"
    kubelet.run_job(plane, job, exit_code)
    kubelet.job_condition(plane, job, "Failed" if exit_code else "Complete")
    return run


@pytest.mark.parametrize("outage", ["refused", "503"])
def test_the_api_server_unavailable_in_the_middle_of_a_reconcile(control_plane, as_account, flaky_tracking, outage):
    """The pass records FINISHED, then the API goes away before it reads the pods whose logs it uploads
    (connections refused, or 503 from the fake's switch); the next pass, with the API back, uploads them."""
    fake = control_plane.fake
    if outage == "503" and fake is None:
        pytest.skip("the 503 switch is the fake's: a real API server is cut at the network instead")
    tracking = flaky_tracking.url
    run = ended_run(control_plane, as_account, tracking, f"tiny-{'llama' if outage == '503' else 'qwen'}-baseline", 0)
    proxy = ApiProxy(*control_plane.api_address)

    def outage_starts() -> None:
        if fake is not None and outage == "503":
            fake.unavailable = True
        else:
            proxy.cut()

    cut = flaky_tracking.on(mlflow_call("runs/update", run_id=run.info.run_id, status="FINISHED"), outage_starts)
    try:
        result = as_account(RECONCILER, ["reconcile"], port=proxy.port)
    finally:
        if fake is not None:
            fake.unavailable = False
        proxy.close()
    assert cut.fired.is_set()
    scheme = control_plane.admin.configuration.host.split("://")[0]
    cause = (
        "API error 503" if outage == "503" else f"cannot reach the Kubernetes API at {scheme}://127.0.0.1:{proxy.port}"
    )
    survived = one_line(result, cause)
    assert survived, result
    assert MlflowClient(tracking).get_run(run.info.run_id).info.status == "FINISHED"
    settle(control_plane, as_account, tracking, f"API {outage} mid-reconcile", survived)


def test_the_api_server_gone_in_the_middle_of_a_launch_and_its_undo(control_plane, as_account, flaky_tracking):
    """The API goes away (connections refused) as the launch records its second run, so the undo cannot
    delete what the first run's objects: the first run's MLflow run stays with them (its `-mlflow`
    ConfigMap names it), the second's is deleted, and a relaunch with the API back resumes the first."""
    tracking = flaky_tracking.url
    first, second = "tiny-llama-400", "tiny-qwen-easy-120"
    proxy = ApiProxy(*control_plane.api_address)
    cut = flaky_tracking.on(mlflow_call("runs/create", run_name=second), proxy.cut)
    try:
        result = as_account(LAUNCHER, ["launch", "--study", "mini", "--run", first, "--run", second], port=proxy.port)
    finally:
        proxy.close()
    assert cut.fired.is_set()
    kept = record(tracking, first)
    survived = one_line(
        result, "cannot reach the Kubernetes API", "launch partly undone", f"MLflow run {kept.info.run_id}"
    )
    assert survived, result[2]
    assert objects_in(control_plane), "the undo could not delete them"
    assert record(tracking, second) is None
    out = ok(as_account(LAUNCHER, ["launch", "--study", "mini", "--run", first, "--run", second]))
    assert record(tracking, first).info.run_id == kept.info.run_id, out
    settle(control_plane, as_account, tracking, "API gone mid-launch and undo", survived)


def test_a_quota_refusal_midway_through_a_launch(control_plane, as_account, tracking):
    """Room for two Jobs: every dry-run fits, the third real Job does not; the launch is undone."""
    from kubernetes import client

    control_plane.create(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "jobs"},
            "spec": {"hard": {"count/jobs.batch": "2"}},
        }
    )
    core = client.CoreV1Api(control_plane.admin)
    wait_for(
        "the quota's first count",
        lambda: core.read_namespaced_resource_quota("jobs", control_plane.namespace).status.used,
    )
    result = as_account(LAUNCHER, ["launch", "--study", "mini", "--run", "tiny-llama-120"])
    survived = one_line(result, "refused by the cluster's admission control", "exceeded quota: jobs", "launch undone")
    assert survived, result[2]
    assert objects_in(control_plane) == [] and record(tracking, "tiny-llama-120") is None
    settle(control_plane, as_account, tracking, "quota mid-launch", survived)


def test_an_rbac_refusal_midway_through_a_launch(control_plane, as_account, flaky_tracking):
    """An admin takes Deployments from the launcher's Role while the launch records its run (after its
    dry-runs passed): the grader Deployment is refused, everything before it undone."""
    from kubernetes import client

    tracking = flaky_tracking.url
    rbac = client.RbacAuthorizationV1Api(control_plane.admin)

    def take_deployments() -> None:
        role = rbac.read_namespaced_role(LAUNCHER, control_plane.namespace)
        rules = [
            control_plane.admin.sanitize_for_serialization(rule)
            for rule in role.rules
            if "deployments" not in rule.resources
        ]
        rbac.patch_namespaced_role(LAUNCHER, control_plane.namespace, {"rules": rules})
        wait_for("the Role change", lambda: not control_plane.may(LAUNCHER, "create", "apps", "deployments"))

    taken = flaky_tracking.on(mlflow_call("runs/create", run_name="tiny-qwen-400"), take_deployments)
    result = as_account(LAUNCHER, ["launch", "--study", "mini", "--run", "tiny-qwen-400"])
    assert taken.fired.is_set()
    survived = one_line(result, "forbidden by RBAC", f"{LAUNCHER} may not get deployments.apps", "launch undone")
    assert survived, result[2]
    assert objects_in(control_plane) == [] and record(tracking, "tiny-qwen-400") is None
    settle(control_plane, as_account, tracking, "RBAC mid-launch", survived)


def test_the_reconciler_killed_mid_pass_and_run_again(control_plane, as_account, flaky_tracking, tmp_path):
    """A real `valleyctl reconcile` process gets SIGKILL as it records why a run failed; the next pass
    records the failure, the status and the logs."""
    tracking = flaky_tracking.url
    run = ended_run(control_plane, as_account, tracking, "tiny-qwen-120", 3)
    started = threading.Event()
    process: list[subprocess.Popen] = []

    def kill() -> None:
        started.wait(60)
        process[0].send_signal(signal.SIGKILL)

    killed = flaky_tracking.on(
        mlflow_call("runs/log-batch", run_id=run.info.run_id, tags=tagged("valley.failure")), kill, forward=False
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), **as_account.env(RECONCILER)}
    process.append(
        subprocess.Popen(
            [sys.executable, "-m", "manager", "reconcile"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    )
    started.set()
    out, err = process[0].communicate(timeout=240)
    assert killed.fired.is_set() and process[0].returncode == -signal.SIGKILL, (process[0].returncode, out, err)
    client = MlflowClient(tracking)
    assert "valley.failure" not in client.get_run(run.info.run_id).data.tags, "killed before the record"
    again = as_account(RECONCILER, ["reconcile"])
    survived = again[0] == 0
    record_after = client.get_run(run.info.run_id)
    assert record_after.info.status == "FAILED" and record_after.data.tags["valley.failure.exit_code"] == "3"
    settle(control_plane, as_account, tracking, "reconciler SIGKILL mid-pass", survived)
