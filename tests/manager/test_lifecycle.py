"""Job states -> MLflow status and the gates between Jobs (pure; table-driven)."""

import pytest

from manager.backends.lifecycle import job_state, plan_reconcile, run_states, run_status
from manager.render import RenderContext, render_run
from manager.study import valley_study


def job(state=None, suspend=False, active=0, ready=0):
    conditions = [{"type": state, "status": "True"}] if state else []
    return {"spec": {"suspend": suspend}, "status": {"conditions": conditions, "active": active, "ready": ready}}


@pytest.mark.parametrize(
    "obj,state",
    [
        (job(suspend=True), "suspended"),
        (job(), "pending"),
        (job(active=1, ready=1), "running"),
        (job(active=1), "pending"),  # a pod that is not running yet (Pending, even unschedulable)
        (job("Complete"), "succeeded"),
        (job("Failed"), "failed"),
        (job("FailureTarget", active=1), "failed"),
        ({"metadata": {}}, "pending"),
    ],
)
def test_job_state(obj, state):
    assert job_state(obj) == state


@pytest.mark.parametrize(
    "states,status",
    [
        ({"data": "running", "train": "suspended", "eval": "suspended"}, "RUNNING"),
        ({"data": "pending", "train": "suspended", "eval": "suspended"}, "SCHEDULED"),
        ({"data": "succeeded", "train": "failed", "eval": "suspended"}, "FAILED"),
        ({"data": "succeeded", "train": "succeeded", "eval": "succeeded"}, "FINISHED"),
        ({"data": "succeeded", "eval": "running"}, "RUNNING"),
    ],
)
def test_run_status(states, status):
    assert run_status(states) == status


def cluster(*labels_states):
    """The Jobs of the named runs as the API would return them, with states applied."""
    runs = {r.label: r for r in valley_study()}
    jobs = []
    for label, states in labels_states:
        for obj in render_run(runs[label], RenderContext()):
            if obj["kind"] != "Job" or obj["metadata"]["name"] in {j["metadata"]["name"] for j in jobs}:
                continue
            stage = obj["metadata"]["labels"]["app.kubernetes.io/component"]
            state = states.get(stage)
            if state == "succeeded":
                obj["spec"]["suspend"] = False
                obj["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
            elif state == "open":
                obj["spec"]["suspend"] = False
            jobs.append(obj)
    return runs, jobs


def test_train_opens_when_data_succeeded_eval_waits():
    runs, jobs = cluster(("qwen-10k", {"data": "succeeded"}))
    plan = plan_reconcile(jobs)
    assert [o.job for o in plan.opens] == [f"{runs['qwen-10k'].name}-train"]
    assert plan.opens[0].patch == {"spec": {"suspend": False}}
    assert plan.statuses[runs["qwen-10k"].name] == ("valley", "RUNNING")


def test_continued_run_waits_for_base_train_then_opens():
    runs, jobs = cluster(
        ("qwen-30k", {"data": "succeeded", "train": "open"}), ("qwen-30k+easy-4k", {"data": "succeeded"})
    )
    plan = plan_reconcile(jobs)
    continued = runs["qwen-30k+easy-4k"].name
    assert f"{continued}-train" not in [o.job for o in plan.opens]
    assert plan.waiting[continued] == f"train waits for {runs['qwen-30k'].name}-train (pending)"
    runs, jobs = cluster(
        ("qwen-30k", {"data": "succeeded", "train": "succeeded"}), ("qwen-30k+easy-4k", {"data": "succeeded"})
    )
    opened = {o.job for o in plan_reconcile(jobs).opens}
    assert opened == {f"{continued}-train", f"{runs['qwen-30k'].name}-eval"}


def test_baseline_eval_opens_after_data_and_second_pass_is_a_no_op():
    runs, jobs = cluster(("qwen-baseline", {"data": "succeeded"}))
    assert [o.job for o in plan_reconcile(jobs).opens] == [f"{runs['qwen-baseline'].name}-eval"]
    runs, jobs = cluster(("qwen-baseline", {"data": "succeeded", "eval": "open"}))
    assert plan_reconcile(jobs).opens == []


def test_queued_job_opens_by_getting_its_queue_label():
    run = next(r for r in valley_study() if r.label == "qwen-1k")
    jobs = [o for o in render_run(run, RenderContext(queue="gpu")) if o["kind"] == "Job"]
    jobs[0]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    (action,) = plan_reconcile(jobs).opens
    assert action.patch == {"metadata": {"labels": {"kueue.x-k8s.io/queue-name": "gpu"}}}


def shared(jobs, kind):
    return next(j for j in jobs if j["metadata"]["labels"].get("valley.shared") == kind)


def test_subset_build_waits_for_its_fetch_and_train_for_both():
    runs, jobs = cluster(("qwen-10k", {}))
    name = runs["qwen-10k"].name
    fetch, subset = shared(jobs, "fetch"), shared(jobs, "data")
    plan = plan_reconcile(jobs)
    assert plan.opens == [] and plan.waiting[name].startswith(f"train waits for {fetch['metadata']['name']} (pending)")
    fetch["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    assert [o.job for o in plan_reconcile(jobs).opens] == [subset["metadata"]["name"]]
    assert run_states(jobs)[name]["data"] == "running"  # the fetch is done, the rest to come


def test_a_failed_shared_job_fails_every_run_that_needs_it_and_says_why():
    runs, jobs = cluster(("qwen-10k", {}), ("qwen-30k", {}), ("llama-10k", {}))
    fetch = next(j for j in jobs if j["metadata"]["name"].startswith("valley-fetch-qwen"))
    fetch["status"] = {"conditions": [{"type": "Failed", "status": "True"}]}
    plan = plan_reconcile(jobs)
    for label in ("qwen-10k", "qwen-30k"):
        name = runs[label].name
        assert plan.statuses[name] == ("valley", "FAILED")
        assert plan.failed[name] == ("fetch", fetch) and name not in plan.waiting  # said once, as the failure
        assert run_states(jobs)[name]["data"] == "failed"
    assert plan.statuses[runs["llama-10k"].name] == ("valley", "SCHEDULED")
