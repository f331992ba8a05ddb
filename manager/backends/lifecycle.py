"""Job states -> MLflow run status, and the gates between a run's Jobs.

`plan_reconcile` is pure: given the Jobs (dicts as the API returns them) it says which gated
Jobs to open and which status each run has. `reconcile_once` applies that plan through the
client and the tracker; every action is idempotent, so two passes at once are harmless.

Gates: a run's train Job waits for its data Job, and for a continued run also for the base
run's train Job; its eval Job waits for its train Job (a baseline's for its data Job).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from manager.render.common import QUEUE_ANNOTATION, QUEUE_LABEL
from manager.tracking import FAILED, FINISHED, KILLED, RUNNING, SCHEDULED

SUSPENDED, PENDING, ACTIVE, SUCCEEDED, JOB_FAILED = "suspended", "pending", "running", "succeeded", "failed"
STAGES = ("data", "train", "eval")


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
    return ACTIVE if (status.get("active") or 0) > 0 else PENDING


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


def _stage(job: dict) -> str:
    return job["metadata"]["labels"]["app.kubernetes.io/component"]


def _open(job: dict, reason: str) -> Open | None:
    meta = job["metadata"]
    queue = (meta.get("annotations") or {}).get(QUEUE_ANNOTATION)
    if queue:
        if (meta.get("labels") or {}).get(QUEUE_LABEL) == queue:
            return None
        return Open(meta["name"], {"metadata": {"labels": {QUEUE_LABEL: queue}}}, reason)
    if not (job.get("spec") or {}).get("suspend"):
        return None
    return Open(meta["name"], {"spec": {"suspend": False}}, reason)


def plan_reconcile(jobs: list[dict]) -> Plan:
    plan = Plan()
    by_run: dict[str, dict[str, dict]] = {}
    for job in jobs:
        labels = job["metadata"].get("labels") or {}
        if "valley.run" in labels and labels.get("app.kubernetes.io/component") in STAGES:
            by_run.setdefault(labels["valley.run"], {})[_stage(job)] = job
    for run, stages in sorted(by_run.items()):
        states = {stage: job_state(job) for stage, job in stages.items()}
        study = next(iter(stages.values()))["metadata"]["labels"].get("valley.study", "valley")
        plan.statuses[run] = (study, run_status(states))
        for stage in STAGES:
            if states.get(stage) in (SUCCEEDED, JOB_FAILED):
                plan.ended.append((run, stage, stages[stage]))
            if states.get(stage) == JOB_FAILED and run not in plan.failed:
                plan.failed[run] = (stage, stages[stage])
        if run in plan.failed:  # nothing of a failed run opens or waits any more
            continue
        train = stages.get("train")
        if train is not None and states["train"] == SUSPENDED:
            base = train["metadata"]["labels"].get("valley.base-run")
            base_state = job_state(by_run[base]["train"]) if base and "train" in by_run.get(base, {}) else None
            if states.get("data") != SUCCEEDED:
                plan.waiting[run] = "train waits for its data Job"
            elif base and base_state != SUCCEEDED:
                plan.waiting[run] = f"train waits for base run {base} ({base_state or 'not launched'})"
            elif (action := _open(train, "data built" + (f", base {base} trained" if base else ""))):
                plan.opens.append(action)
        gate = "train" if train is not None else "data"
        eval_job = stages.get("eval")
        if eval_job is not None and states["eval"] == SUSPENDED:
            if states.get(gate) == SUCCEEDED:
                if (action := _open(eval_job, f"{gate} succeeded")):
                    plan.opens.append(action)
            else:
                plan.waiting.setdefault(run, f"eval waits for its {gate} Job")
    return plan


def reconcile_once(kube, tracker, *, echo=print) -> Plan:
    """One pass: create MLflow runs for specs applied through GitOps, open gates, mirror
    Job states into MLflow (never over a run that was cancelled), record why a run failed,
    upload the logs of stages that ended, and let each study run follow its runs."""
    from manager.tracking import ACTIVE

    ensure_gitops_runs(kube, tracker, echo=echo)
    plan = plan_reconcile(kube.list("Job", "app.kubernetes.io/part-of=valley"))
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
            tracker.set_tags(found.info.run_id, {f"valley.failure.{k}": v for k, v in failure.items()}
                             | {"valley.failure": failure_line(failure)})
            echo(f"{run_name}: {failure_line(failure)}")
        tracker.set_status(found.info.run_id, status)
        echo(f"{run_name}: MLflow {current} -> {status}")
    for run_name, stage, job in plan.ended:
        found = records.get(run_name)
        if found is not None and f"valley.logs.{stage}" not in found.data.tags:
            upload_logs(kube, tracker, found.info.run_id, stage, job)
    for study in sorted({study for study, _ in plan.statuses.values()}):
        follow_study(tracker, study, echo)
    return plan


def failure_of(kube, stage: str, job: dict) -> dict[str, str]:
    """The failed Job's condition (reason, message) and the container that failed, with its exit code."""
    condition = next((c for c in (job.get("status") or {}).get("conditions") or []
                      if c.get("type") in ("Failed", "FailureTarget") and c.get("status") == "True"), {})
    failure = {"stage": stage, "reason": condition.get("reason", "Failed"), "message": condition.get("message", "")}
    for pod in kube.list("Pod", f"batch.kubernetes.io/job-name={job['metadata']['name']}"):
        status = pod.get("status") or {}
        for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            terminated = (container.get("state") or {}).get("terminated") or {}
            if terminated.get("exitCode", 0) != 0:
                failure.update(container=container["name"], exit_code=str(terminated["exitCode"]), pod=pod["metadata"]["name"])
                return failure
    return failure


def failure_line(failure: dict[str, str]) -> str:
    where = f", container {failure['container']} exit code {failure['exit_code']}" if "container" in failure else ""
    message = f": {failure['message']}" if failure.get("message") else ""
    return f"{failure['stage']} Job failed: {failure['reason']}{where}{message}"


def upload_logs(kube, tracker, run_id: str, stage: str, job: dict) -> None:
    """Every container log of the Job's pods as `logs/<stage>/<pod>/<container>.log`, once."""
    for pod in kube.list("Pod", f"batch.kubernetes.io/job-name={job['metadata']['name']}"):
        name = pod["metadata"]["name"]
        for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            text = kube.pod_log_text(name, container["name"])
            if text is not None:
                tracker.client.log_text(run_id, text, f"logs/{stage}/{name}/{container['name']}.log")
    tracker.set_tags(run_id, {f"valley.logs.{stage}": "uploaded"})


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
    newest = {r.data.tags.get("valley.run_name"): r.info.status for r in tracker.study_runs(study)}
    status = study_status(list(newest.values()))
    if status is None:
        return
    study_run = tracker.study_run_id(study)
    current = tracker.status(study_run)
    if current != status:
        tracker.set_status(study_run, status)
        echo(f"study {study}: MLflow {current} -> {status}")


def ensure_gitops_runs(kube, tracker, *, echo=print) -> None:
    """A run applied from git has its spec ConfigMap but no MLflow run yet: create the run
    and the `<run>-mlflow` ConfigMap its pods are waiting for."""
    from dataclasses import replace

    from manager.render import RenderContext, mlflow_configmap
    from valley.spec import RunSpec

    specs = kube.list("ConfigMap", "app.kubernetes.io/part-of=valley,app.kubernetes.io/component=config")
    have = {cm["metadata"]["name"] for cm in specs}
    for cm in specs:
        name = cm["metadata"]["name"]
        if not name.endswith("-spec") or name.removesuffix("-spec") + "-mlflow" in have:
            continue
        run = RunSpec.from_json(cm["data"]["run.json"])
        run_id, created = tracker.ensure_run(run)
        ctx = replace(RenderContext(namespace=kube.namespace), run_id=run_id, tracking_uri=tracker.uri)
        kube.create(mlflow_configmap(run, ctx))
        echo(f"{run.name}: MLflow run {run_id} {'created' if created else 'found'} for a spec applied from git")
