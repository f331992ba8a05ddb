"""Job states -> MLflow status and the gates between Jobs (pure; table-driven)."""

import pytest

from manager.backends.lifecycle import job_state, plan_reconcile, run_status
from manager.render import RenderContext, render_run
from manager.study import valley_study


def job(state=None, suspend=False, active=0):
    conditions = [{"type": state, "status": "True"}] if state else []
    return {"spec": {"suspend": suspend}, "status": {"conditions": conditions, "active": active}}


@pytest.mark.parametrize("obj,state", [
    (job(suspend=True), "suspended"),
    (job(), "pending"),
    (job(active=1), "running"),
    (job("Complete"), "succeeded"),
    (job("Failed"), "failed"),
    (job("FailureTarget", active=1), "failed"),
    ({"metadata": {}}, "pending"),
])
def test_job_state(obj, state):
    assert job_state(obj) == state


@pytest.mark.parametrize("states,status", [
    ({"data": "running", "train": "suspended", "eval": "suspended"}, "RUNNING"),
    ({"data": "pending", "train": "suspended", "eval": "suspended"}, "SCHEDULED"),
    ({"data": "succeeded", "train": "failed", "eval": "suspended"}, "FAILED"),
    ({"data": "succeeded", "train": "succeeded", "eval": "succeeded"}, "FINISHED"),
    ({"data": "succeeded", "eval": "running"}, "RUNNING"),
])
def test_run_status(states, status):
    assert run_status(states) == status


def cluster(*labels_states):
    """The Jobs of the named runs as the API would return them, with states applied."""
    runs = {r.label: r for r in valley_study()}
    jobs = []
    for label, states in labels_states:
        for obj in render_run(runs[label], RenderContext()):
            if obj["kind"] != "Job":
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
    runs, jobs = cluster(("qwen-30k", {"data": "succeeded", "train": "open"}),
                         ("qwen-30k+easy-4k", {"data": "succeeded"}))
    plan = plan_reconcile(jobs)
    continued = runs["qwen-30k+easy-4k"].name
    assert f"{continued}-train" not in [o.job for o in plan.opens]
    assert "base run" in plan.waiting[continued]
    runs, jobs = cluster(("qwen-30k", {"data": "succeeded", "train": "succeeded"}),
                         ("qwen-30k+easy-4k", {"data": "succeeded"}))
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
