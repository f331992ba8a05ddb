"""Job states -> MLflow run status, and the gates between a run's Jobs.

`plan_reconcile` is pure: given the Jobs (dicts as the API returns them) it says which gated
Jobs to open and which status each run has. `reconcile_once` applies that plan through the
client and the tracker; every action is idempotent, so two passes at once are harmless.

Gates are data: a gated Job names the Jobs it waits for in its `valley/needs` annotation (from
manager.layout's stage needs): a train Job its student's fetch and its subset build (and a
continued run's base train Job), an eval Job its train Job (a baseline's: the fetch) and its
LiveCodeBench staging, a subset build its fetch. A run whose needed Job failed is FAILED, with
that Job's failure recorded (shared data Jobs count under their kind: fetch, lcb, data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from manager.layout import SHARED
from manager.tracking import FAILED, FINISHED, KILLED, RUNNING, SCHEDULED
from valley.spec import RunSpec
from valley.vocabulary import (
    ALL_OBJECTS,
    APP_COMPONENT,
    CONFIGMAPS,
    EXECUTOR_TAG,
    LAUNCH_ABANDONED,
    LAUNCH_DEADLINE_TAG,
    LAUNCH_TAG,
    NEEDS_ANNOTATION,
    QUEUE_ANNOTATION,
    QUEUE_LABEL,
    RUN_LABEL,
    RUN_NAME_TAG,
    SHARED_LABEL,
    STAGE_COMPONENTS,
    STUDY_LABEL,
    STUDY_TAG,
    annotation,
    failure_tags,
    label,
    logs_tag,
    pods_of_job,
)

SUSPENDED, PENDING, ACTIVE, SUCCEEDED, JOB_FAILED = "suspended", "pending", "running", "succeeded", "failed"
#: how long a launch may go on creating objects after recording its runs `pending`, and how much later a
#: pending run with nothing in its namespace counts as abandoned (the launching machine's clock may differ)
LAUNCH_DEADLINE_S = 15 * 60.0
LAUNCH_GRACE_S = 5 * 60.0


def job_state(job: dict) -> str:
    """suspended | pending | running | succeeded | failed, from a Job's spec and conditions."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition["type"] in ("Complete", "SuccessCriteriaMet"):
            return SUCCEEDED
        if condition["type"] in ("Failed", "FailureTarget"):
            return JOB_FAILED
    if (job.get("spec") or {}).get("suspend"):
        return SUSPENDED
    # `active` counts pods that are still Pending (unschedulable ones too); `ready` those that run
    return ACTIVE if (status.get("ready") or 0) > 0 else PENDING


def run_status(states: dict[str, str]) -> str:
    """The MLflow status a run's Jobs add up to (stage -> state)."""
    if JOB_FAILED in states.values():
        return FAILED
    if states.get("eval") == SUCCEEDED:
        return FINISHED
    if ACTIVE in states.values() or SUCCEEDED in states.values():
        return RUNNING
    return SCHEDULED


@dataclass(frozen=True)
class Open:
    """Open a gated Job: unsuspend it, or hand it to its Kueue queue (Kueue unsuspends)."""

    job: str
    patch: dict
    reason: str


@dataclass
class Plan:
    opens: list[Open] = field(default_factory=list)
    #: run name -> (study, MLflow status)
    statuses: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: run name -> what it waits for
    waiting: dict[str, str] = field(default_factory=dict)
    #: run name -> (stage, Job) of its first failed Job
    failed: dict[str, tuple[str, dict]] = field(default_factory=dict)
    #: (run name, stage, Job) of every Job that ended, succeeded or failed
    ended: list[tuple[str, str, dict]] = field(default_factory=list)


def _open(job: dict, reason: str) -> Open | None:
    name = job["metadata"]["name"]
    queue = annotation(job, QUEUE_ANNOTATION)
    if queue:
        if label(job, QUEUE_LABEL) == queue:
            return None
        return Open(name, {"metadata": {"labels": {QUEUE_LABEL: queue}}}, reason)
    if not (job.get("spec") or {}).get("suspend"):
        return None
    return Open(name, {"spec": {"suspend": False}}, reason)


def needs(job: dict) -> list[str]:
    """The Jobs a gated Job waits for (its `valley/needs` annotation)."""
    value = annotation(job, NEEDS_ANNOTATION) or ""
    return [name for name in value.split(",") if name]


def combined(states: list[str]) -> str:
    """One state for several Jobs (a run's shared data Jobs): failed if any failed, succeeded
    when all did, running while any runs."""
    if JOB_FAILED in states:
        return JOB_FAILED
    if states and all(state == SUCCEEDED for state in states):
        return SUCCEEDED
    return ACTIVE if ACTIVE in states or SUCCEEDED in states else PENDING


def run_jobs(jobs: list[dict]) -> tuple[dict[str, dict], dict[str, dict[str, dict]]]:
    """(Jobs by name, run name -> stage -> the run's own Job)."""
    by_name = {job["metadata"]["name"]: job for job in jobs}
    by_run: dict[str, dict[str, dict]] = {}
    for job in jobs:
        run, component = label(job, RUN_LABEL), label(job, APP_COMPONENT)
        if run is not None and component in STAGE_COMPONENTS:
            by_run.setdefault(run, {})[component] = job
    return by_name, by_run


def shared_needs(stages: dict[str, dict], by_name: dict[str, dict]) -> list[tuple[str, dict]]:
    """(kind, Job) of the shared data Jobs (fetch, lcb, data) a run's Jobs wait for."""
    names = {name for job in stages.values() for name in needs(job)}
    found = [by_name[name] for name in sorted(names) if name in by_name]
    order = {kind: index for index, kind in enumerate(SHARED)}
    shared = [(label(job, SHARED_LABEL), job) for job in found if label(job, SHARED_LABEL) in order]
    return sorted(shared, key=lambda pair: order[pair[0]])


def run_states(jobs: list[dict]) -> dict[str, dict[str, str]]:
    """run name -> stage -> state; `data` is the combined state of the shared data Jobs
    (fetch, LiveCodeBench, subset) the run's Jobs wait for."""
    by_name, by_run = run_jobs(jobs)
    result = {}
    for run, stages in by_run.items():
        states = {stage: job_state(job) for stage, job in stages.items()}
        shared = shared_needs(stages, by_name)
        if shared:
            states["data"] = combined([job_state(job) for _, job in shared])
        result[run] = states
    return result


def plan_reconcile(jobs: list[dict]) -> Plan:
    """Open every gated Job whose needs all succeeded; each run's status, the Jobs of it that
    ended (its shared data Jobs under their kind), and the first that failed."""
    plan = Plan()
    by_name, by_run = run_jobs(jobs)
    states = run_states(jobs)
    for job in sorted(jobs, key=lambda j: j["metadata"]["name"]):  # shared Jobs gate only on each other
        if label(job, SHARED_LABEL) is not None and job_state(job) == SUSPENDED:
            if needs(job) and all(name in by_name and job_state(by_name[name]) == SUCCEEDED for name in needs(job)):
                if action := _open(job, f"{', '.join(needs(job))} succeeded"):
                    plan.opens.append(action)
    for run, stages in sorted(by_run.items()):
        study = label(next(iter(stages.values())), STUDY_LABEL) or "valley"
        own = [(stage, stages[stage]) for stage in STAGE_COMPONENTS if stage in stages]
        for stage, job in shared_needs(stages, by_name) + own:
            if job_state(job) in (SUCCEEDED, JOB_FAILED):
                plan.ended.append((run, stage, job))
            if job_state(job) == JOB_FAILED and run not in plan.failed:
                plan.failed[run] = (stage, job)
        for stage, job in own:  # another run's Job it needs (a base run's training) failed
            for name in needs(job):
                if name in by_name and job_state(by_name[name]) == JOB_FAILED and run not in plan.failed:
                    plan.failed[run] = (label(by_name[name], APP_COMPONENT) or stage, by_name[name])
        plan.statuses[run] = (study, FAILED if run in plan.failed else run_status(states[run]))
        if run in plan.failed:  # nothing of a failed run opens or waits any more
            continue
        for stage, job in own:
            waits = needs(job)
            if not waits or job_state(job) != SUSPENDED:
                continue
            pending = {
                name: job_state(by_name[name]) if name in by_name else "not created"
                for name in waits
                if name not in by_name or job_state(by_name[name]) != SUCCEEDED
            }
            if not pending:
                if action := _open(job, f"{', '.join(waits)} succeeded"):
                    plan.opens.append(action)
            else:
                plan.waiting.setdefault(
                    run, f"{stage} waits for " + ", ".join(f"{n} ({s})" for n, s in pending.items())
                )
    return plan


def reconcile_once(kube, tracker, *, echo=print) -> Plan:
    """One pass: create MLflow runs for specs applied through GitOps, open gates, mirror
    Job states into MLflow (never over a run that was cancelled), record why a run failed,
    upload the logs of stages that ended, and let each study run follow its runs."""

    configmaps = kube.list("ConfigMap", CONFIGMAPS)
    ensure_gitops_runs(kube, tracker, configmaps, echo=echo)
    jobs = kube.list("Job", ALL_OBJECTS)
    plan = plan_reconcile(jobs)
    for action in plan.opens:
        kube.patch_job(action.job, action.patch)
        echo(f"opened {action.job}: {action.reason}")
    records = {}
    for run_name, (study, status) in plan.statuses.items():
        found = tracker.find_by_name(study, run_name)
        if found is None:
            continue
        records[run_name] = found
        current = found.info.status
        if current in (status, KILLED):  # a workload ending its attached run is overruled; a cancel is not
            continue
        if status == FAILED and run_name in plan.failed:
            stage, job = plan.failed[run_name]
            failure = failure_of(kube, stage, job)
            tracker.set_tags(found.info.run_id, failure_tags(failure, failure_line(failure)))
            echo(f"{run_name}: {failure_line(failure)}")
        tracker.set_status(found.info.run_id, status)
        echo(f"{run_name}: MLflow {current} -> {status}")
    for run_name, stage, job in plan.ended:
        found = records.get(run_name)
        if found is not None and logs_tag(stage) not in found.data.tags:
            upload_logs(kube, tracker, found.info.run_id, stage, job)
    present = {label(obj, RUN_LABEL) for obj in jobs + configmaps}
    closed = close_abandoned_launches(tracker, kube.namespace, present, echo)
    for study in sorted({study for study, _ in plan.statuses.values()} | closed):
        follow_study(tracker, study, echo)
    return plan


def abandoned_launches(records: list, present: set[str | None], now: datetime) -> list:
    """The runs recorded `pending` by a launch that is over (its deadline and the grace period passed)
    and left nothing of them in the namespace. A deadline that does not parse was not written by a
    launch still going on."""
    found = []
    for record in records:
        if record.data.tags.get(RUN_NAME_TAG) in present:
            continue  # objects of it exist: its Jobs tell its state, a relaunch completes the rest
        try:
            deadline = datetime.strptime(record.data.tags.get(LAUNCH_DEADLINE_TAG, ""), "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            found.append(record)
            continue
        if deadline.replace(tzinfo=timezone.utc) + timedelta(seconds=LAUNCH_GRACE_S) < now:
            found.append(record)
    return found


def close_abandoned_launches(tracker, namespace: str, present: set[str | None], echo) -> set[str]:
    """Mark KILLED each run a launch into `namespace` recorded and never finished; the studies touched."""
    studies = set()
    for record in abandoned_launches(tracker.pending_launches(namespace), present, datetime.now(timezone.utc)):
        run_id, name = record.info.run_id, record.data.tags.get(RUN_NAME_TAG)
        note = (
            f"launch did not complete (by {record.data.tags.get(LAUNCH_DEADLINE_TAG, '?')}): nothing of {name} is in "
            f"namespace {namespace}; relaunch it to start it"
        )
        tracker.set_tags(run_id, {LAUNCH_TAG: LAUNCH_ABANDONED})
        tracker.set_status(run_id, KILLED, note=note)
        echo(f"{name}: MLflow {record.info.status} -> {KILLED}: {note}")
        studies.add(record.data.tags.get(STUDY_TAG))
    return studies - {None}


def failure_of(kube, stage: str, job: dict) -> dict[str, str]:
    """The failed Job's condition (reason, message) and the container that failed, with its exit code."""
    condition = next(
        (
            c
            for c in (job.get("status") or {}).get("conditions") or []
            if c.get("type") in ("Failed", "FailureTarget") and c.get("status") == "True"
        ),
        {},
    )
    failure = {"stage": stage, "reason": condition.get("reason", "Failed"), "message": condition.get("message", "")}
    pods = kube.list("Pod", pods_of_job(job["metadata"]["name"]))
    # the pod that made the Job fail: the one podFailurePolicy's message names, else the last to end
    named = re.search(r"for pod [^/\s]+/(\S+) failed", failure["message"])
    trigger = [p for p in pods if named and p["metadata"]["name"] == named[1]] or sorted(pods, key=_ended, reverse=True)
    for pod in trigger:
        status = pod.get("status") or {}
        for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            terminated = (container.get("state") or {}).get("terminated") or {}
            if terminated.get("exitCode", 0) != 0:
                failure.update(
                    container=container["name"], exit_code=str(terminated["exitCode"]), pod=pod["metadata"]["name"]
                )
                return failure
    return failure


def _ended(pod: dict) -> tuple[str, str]:
    """When a pod's last container ended (RFC 3339 sorts as text), then its creation."""
    status = pod.get("status") or {}
    finished = [
        ((c.get("state") or {}).get("terminated") or {}).get("finishedAt") or ""
        for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    ]
    return max(finished, default=""), pod["metadata"].get("creationTimestamp") or ""


def failure_line(failure: dict[str, str]) -> str:
    where = f", container {failure['container']} exit code {failure['exit_code']}" if "container" in failure else ""
    message = f": {failure['message']}" if failure.get("message") else ""
    return f"{failure['stage']} Job failed: {failure['reason']}{where}{message}"


def upload_logs(kube, tracker, run_id: str, stage: str, job: dict) -> None:
    """Every container log of the Job's pods as `logs/<stage>/<pod>/<container>.log`, once."""
    for pod in kube.list("Pod", pods_of_job(job["metadata"]["name"])):
        name = pod["metadata"]["name"]
        for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            text = kube.pod_log_text(name, container["name"])
            if text is not None:
                tracker.client.log_text(run_id, text, f"logs/{stage}/{name}/{container['name']}.log")
    tracker.set_tags(run_id, {logs_tag(stage): "uploaded"})


def study_status(statuses: list[str]) -> str | None:
    """The status a study's parent run follows from its runs' (None when none was launched)."""
    if not statuses:
        return None
    if RUNNING in statuses:
        return RUNNING
    if all(status in (FINISHED, FAILED, KILLED) for status in statuses):
        if FAILED in statuses:
            return FAILED
        return KILLED if all(status == KILLED for status in statuses) else FINISHED
    return RUNNING if any(status != SCHEDULED for status in statuses) else SCHEDULED


def follow_study(tracker, study: str, echo) -> None:
    newest = {r.data.tags.get(RUN_NAME_TAG): r.info.status for r in tracker.study_runs(study)}
    status = study_status(list(newest.values()))
    if status is None:
        return
    study_run = tracker.study_run_id(study)
    current = tracker.status(study_run)
    if current != status:
        tracker.set_status(study_run, status)
        echo(f"study {study}: MLflow {current} -> {status}")


def ensure_gitops_runs(kube, tracker, specs: list[dict], *, echo=print) -> None:
    """A run applied from git has its spec ConfigMap but no MLflow run yet: create the run
    and the `<run>-mlflow` ConfigMap its pods are waiting for."""
    from dataclasses import replace

    from manager.render import RenderContext, mlflow_configmap

    have = {cm["metadata"]["name"] for cm in specs}
    for cm in specs:
        name = cm["metadata"]["name"]
        if not name.endswith("-spec") or name.removesuffix("-spec") + "-mlflow" in have:
            continue
        run = spec_of(cm)
        run_id, created = tracker.ensure_run(run, tags={EXECUTOR_TAG: "k8s"})
        ctx = replace(RenderContext(namespace=kube.namespace), run_id=run_id, tracking_uri=tracker.uri)
        kube.create(mlflow_configmap(run, ctx))
        echo(f"{run.name}: MLflow run {run_id} {'created' if created else 'found'} for a spec applied from git")


def spec_of(cm: dict) -> RunSpec:
    """The RunSpec a `<run>-spec` ConfigMap holds, checked to be that run's."""
    from valley.errors import ValleyError, one_line

    name = cm["metadata"]["name"]
    try:
        run = RunSpec.from_json((cm.get("data") or {})["run.json"])
    except (KeyError, ValueError) as error:  # ValidationError is a ValueError
        raise ValleyError(f"ConfigMap {name}: run.json is not a run spec ({one_line(error)})") from None
    if run.name != name.removesuffix("-spec"):
        raise ValleyError(f"ConfigMap {name}: run.json is the spec of run {run.name}")
    return run
