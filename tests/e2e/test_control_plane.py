"""Scenarios a cluster admin walks through, as the kit's own ServiceAccounts (valley-launcher
launches, cancels and reads; valley-reconciler reconciles), so the shipped RBAC is what is tested.

    VALLEY_E2E_KUBECONFIG=~/.kube/admin.yaml .venv/bin/python -m pytest tests/e2e    # on a real cluster
"""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from tests.e2e import kubelet
from tests.e2e.conftest import ADMIN, PUSHED, wait_for

LAUNCHER, RECONCILER = "valley-launcher", "valley-reconciler"


def record(tracking: str, label: str, study: str = "valley"):
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name(f"valley-{study}")
    runs = client.search_runs(
        [experiment.experiment_id], f"tags.`valley.label` = '{label}'", order_by=["attributes.start_time DESC"]
    )
    return runs[0] if runs else None


def ok(result) -> str:
    code, out, err = result
    assert code == 0, err
    return out


def shared_jobs(plane, run_name: str) -> list[str]:
    """The shared data Jobs a run's Jobs wait for (valley/needs), fetch first."""
    from kubernetes import client

    batch = client.BatchV1Api(plane.admin)
    needs = set()
    for job in batch.list_namespaced_job(plane.namespace, label_selector=f"valley.run={run_name}").items:
        needs |= set(filter(None, ((job.metadata.annotations or {}).get("valley/needs") or "").split(",")))
    order = ("valley-fetch-", "valley-lcb-", "valley-data-")
    return sorted((n for n in needs if n.startswith(order)), key=lambda n: [n.startswith(o) for o in order].index(True))


def run_shared(plane, run_name: str, as_account) -> None:
    """Every shared data Job of the run runs to success (a subset build opens once its fetch succeeded)."""
    for job in shared_jobs(plane, run_name):
        if job.startswith("valley-data-"):
            ok(as_account(RECONCILER, ["reconcile"]))
        kubelet.run_job(plane, job)
        kubelet.job_condition(plane, job, "Complete")


def test_a_baseline_runs_to_finished_as_the_kits_service_accounts(control_plane, as_account, tracking):
    """Launch, then the reconciler opens the eval Job once the shared Jobs succeeded and, once it
    ended, reads its pods and their logs (the reconciler's Role must allow that) and records FINISHED."""
    ok(as_account(LAUNCHER, ["launch", "--run", "llama-baseline"]))
    run = record(tracking, "llama-baseline")
    name = run.data.tags["valley.run_name"]
    run_shared(control_plane, name, as_account)
    out = ok(as_account(RECONCILER, ["reconcile"]))
    assert f"opened {name}-eval" in out
    kubelet.run_job(control_plane, f"{name}-eval")
    kubelet.job_condition(control_plane, f"{name}-eval", "Complete")
    ok(as_account(RECONCILER, ["reconcile"]))
    client = MlflowClient(tracking)
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert client.get_run(run.info.run_id).data.tags.get("valley.logs.eval") == "uploaded"


def test_a_pending_pod_is_not_running_and_an_unschedulable_one_stops_the_wait(control_plane, as_account, tracking):
    ok(as_account(LAUNCHER, ["launch", "--run", "qwen-baseline"]))
    run = record(tracking, "qwen-baseline")
    fetch = shared_jobs(control_plane, run.data.tags["valley.run_name"])[0]
    pod = kubelet.pods_of(control_plane, fetch)[0]
    ok(as_account(RECONCILER, ["reconcile"]))
    assert MlflowClient(tracking).get_run(run.info.run_id).info.status == "SCHEDULED", "a Pending pod runs nothing"
    kubelet.unschedulable(control_plane, pod)
    code, _, err = as_account(LAUNCHER, ["launch", "--run", "qwen-baseline", "--wait", "--timeout", "10m"])
    assert code == 1 and "Unschedulable: 0/3 nodes are available" in err and pod["metadata"]["name"] in err
    code, _, err = as_account(LAUNCHER, ["logs", "qwen-baseline", "--follow", "--timeout", "10m"])
    assert code == 1 and "cannot start (Unschedulable" in err
    kubelet.start(control_plane, pod)
    kubelet.job_ready(control_plane, fetch)  # the Job controller counts it a moment later
    ok(as_account(RECONCILER, ["reconcile"]))
    assert MlflowClient(tracking).get_run(run.info.run_id).info.status == "RUNNING"


def test_the_failure_recorded_is_the_one_that_failed_the_job(control_plane, as_account, tracking):
    """A retried pod killed (137), then its replacement exits 3 (FailJob): the run records exit 3."""
    ok(as_account(LAUNCHER, ["launch", "--run", "llama-1k"]))
    run = record(tracking, "llama-1k")
    name = run.data.tags["valley.run_name"]
    run_shared(control_plane, name, as_account)
    ok(as_account(RECONCILER, ["reconcile"]))
    train = f"{name}-train"
    first = kubelet.pods_of(control_plane, train)[0]
    kubelet.start(control_plane, first)
    kubelet.finish(control_plane, first, 137, at="2026-01-01T00:01:00Z")
    second = next(
        p for p in kubelet.pods_of(control_plane, train, count=2) if p["metadata"]["name"] != first["metadata"]["name"]
    )
    kubelet.start(control_plane, second)
    kubelet.finish(control_plane, second, 3, at="2026-01-01T00:02:00Z")
    kubelet.job_condition(control_plane, train, "Failed")
    ok(as_account(RECONCILER, ["reconcile"]))
    tags = MlflowClient(tracking).get_run(run.info.run_id).data.tags
    assert (tags["valley.failure.exit_code"], tags["valley.failure.pod"]) == ("3", second["metadata"]["name"])
    code, out, err = as_account(LAUNCHER, ["status", "--executor", "k8s"])
    assert code == 0 and "exit code 3" in out, "status shows why a run failed"


def test_the_failure_record_names_the_pod_whose_exit_failed_the_job(control_plane):
    """The record function alone, as the admin (no Role in the way): a first pod killed (137, counted
    against backoffLimit), its replacement exits 3 (FailJob). Seen failing at 8a1d673 against the fake:
    the record took the first pod listed with a non-zero exit, 137."""
    from dataclasses import replace

    from kubernetes import client

    from manager.backends.kube import Kube
    from manager.backends.lifecycle import failure_of
    from manager.render import RenderContext, train_job
    from manager.study import valley_study

    run = next(r for r in valley_study() if r.label == "llama-1k")
    job = train_job(run, replace(RenderContext(namespace=control_plane.namespace, images=PUSHED), run_id="r"))
    job["spec"]["suspend"] = False
    control_plane.create(job)
    name = job["metadata"]["name"]
    first = kubelet.pods_of(control_plane, name)[0]
    kubelet.start(control_plane, first)
    kubelet.finish(control_plane, first, 137, at="2026-01-01T00:01:00Z")
    second = next(
        p for p in kubelet.pods_of(control_plane, name, count=2) if p["metadata"]["name"] != first["metadata"]["name"]
    )
    kubelet.start(control_plane, second)
    kubelet.finish(control_plane, second, 3, at="2026-01-01T00:02:00Z")
    kubelet.job_condition(control_plane, name, "Failed")
    ended = control_plane.admin.sanitize_for_serialization(
        client.BatchV1Api(control_plane.admin).read_namespaced_job(name, control_plane.namespace)
    )
    failure = failure_of(Kube(control_plane.admin, control_plane.namespace), "train", ended)
    assert (failure["exit_code"], failure["pod"], failure["reason"]) == (
        "3",
        second["metadata"]["name"],
        "PodFailurePolicy",
    )


def test_a_full_quota_refuses_new_jobs_in_its_own_words_but_not_a_relaunch(control_plane, as_account, tracking):
    ok(as_account(LAUNCHER, ["launch", "--run", "qwen-1k"]))
    from kubernetes import client

    jobs = len(client.BatchV1Api(control_plane.admin).list_namespaced_job(control_plane.namespace).items)
    control_plane.create(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "jobs"},
            "spec": {"hard": {"count/jobs.batch": str(jobs)}},
        }
    )
    core = control_plane.core
    wait_for(
        "the quota's first count",
        lambda: core.read_namespaced_resource_quota("jobs", control_plane.namespace).status.used,
    )
    out = ok(as_account(LAUNCHER, ["launch", "--run", "qwen-1k"]))
    assert "0 object(s) created" in out, "objects already there are looked up, never created again"
    code, _, err = as_account(LAUNCHER, ["launch", "--run", "qwen-10k"])
    assert code == 1 and "refused by the cluster's admission control" in err and "exceeded quota: jobs" in err
    assert "RBAC" not in err and record(tracking, "qwen-10k") is None


def test_rbac_refusals_name_the_verb_and_the_resource(control_plane, as_account, tracking):
    code, _, err = as_account(RECONCILER, ["launch", "--run", "llama-10k"])
    assert code == 1
    assert f"forbidden by RBAC: system:serviceaccount:{control_plane.namespace}:valley-reconciler may not create" in err


def test_a_relaunch_of_a_finished_run_whose_jobs_are_gone_is_a_new_attempt(control_plane, as_account, tracking):
    ok(as_account(LAUNCHER, ["launch", "--run", "qwen-30k+easy-4k"]))
    base = record(tracking, "qwen-30k")
    client = MlflowClient(tracking)
    client.set_terminated(base.info.run_id, "FINISHED")
    ok(as_account(LAUNCHER, ["cancel", "qwen-30k"]))  # deletes its objects; a finished run stays FINISHED
    assert client.get_run(base.info.run_id).info.status == "FINISHED"
    out = ok(as_account(LAUNCHER, ["launch", "--run", "qwen-30k"]))
    again = record(tracking, "qwen-30k")
    assert again.info.run_id != base.info.run_id and f"after FINISHED run {base.info.run_id}" in out
    ok(as_account(RECONCILER, ["reconcile"]))
    assert client.get_run(base.info.run_id).info.status == "FINISHED"


def test_status_in_a_missing_namespace_is_an_error(control_plane, as_account, tracking):
    """As the admin: a ServiceAccount gets 403 in a namespace it has no Role in, whether or not it exists."""
    ok(as_account(LAUNCHER, ["launch", "--run", "llama-30k"]))
    missing = "nowhere-" + control_plane.namespace
    code, _, err = as_account(ADMIN, ["status", "--executor", "k8s", "--namespace", missing])
    assert code == 1 and "does not exist" in err


def test_json_status_is_one_document(control_plane, as_account, tracking):
    ok(as_account(LAUNCHER, ["launch", "--run", "llama-10k"]))
    rows = json.loads(ok(as_account(LAUNCHER, ["status", "--executor", "k8s", "--json"])))
    assert next(r for r in rows if r["label"] == "llama-10k")["mlflow"] == "SCHEDULED"
