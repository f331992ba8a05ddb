"""Job states -> MLflow run status, and the gates between a run's Jobs.

`plan_reconcile` is pure: given the Jobs (dicts as the API returns them) it says which gated
Jobs to open and which status each run has. `reconcile_once` applies that plan through the
client and the tracker; every action is idempotent, so two passes at once are harmless.

Gates are data: a gated Job names the Jobs it waits for in its `valley/needs` annotation (from
manager.layout's stage needs): a train Job its student's fetch and its subset build (and a
continued run's base train Job), an eval Job its train Job (a baseline's: the fetch) and its
LiveCodeBench staging, a subset build its fetch. A run whose needed Job failed is FAILED.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from manager.render.common import NEEDS_ANNOTATION, QUEUE_ANNOTATION, QUEUE_LABEL
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


def needs(job: dict) -> list[str]:
    """The Jobs a gated Job waits for (its `valley/needs` annotation)."""
    value = ((job["metadata"].get("annotations") or {}).get(NEEDS_ANNOTATION) or "")
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
        labels = job["metadata"].get("labels") or {}
        if "valley.run" in labels and labels.get("app.kubernetes.io/component") in STAGES:
            by_run.setdefault(labels["valley.run"], {})[labels["app.kubernetes.io/component"]] = job
    return by_name, by_run


def run_states(jobs: list[dict]) -> dict[str, dict[str, str]]:
    """run name -> stage -> state; `data` is the combined state of the shared data Jobs
    (fetch, LiveCodeBench, subset) the run's Jobs wait for."""
    by_name, by_run = run_jobs(jobs)
    result = {}
    for run, stages in by_run.items():
        states = {stage: job_state(job) for stage, job in stages.items()}
        shared = {name for job in stages.values() for name in needs(job)
                  if "valley.shared" in (by_name.get(name, {}).get("metadata", {}).get("labels") or {})}
        if shared:
            states["data"] = combined([job_state(by_name[name]) for name in sorted(shared)])
        result[run] = states
    return result


def plan_reconcile(jobs: list[dict]) -> Plan:
    """Open every gated Job whose needs all succeeded; a run's status from its Jobs' states."""
    plan = Plan()
    by_name, by_run = run_jobs(jobs)
    states = run_states(jobs)
    order = {stage: index for index, stage in enumerate(STAGES)}
    for job in sorted(jobs, key=lambda j: (order.get((j["metadata"].get("labels") or {}).get("app.kubernetes.io/component"), -1),
                                           j["metadata"]["name"])):  # a run waits first for what its train waits for
        waits = needs(job)
        if not waits or job_state(job) != SUSPENDED:
            continue
        waiting = {name: job_state(by_name[name]) if name in by_name else "not created" for name in waits}
        pending = {name: state for name, state in waiting.items() if state != SUCCEEDED}
        labels = job["metadata"].get("labels") or {}
        run, stage = labels.get("valley.run"), labels.get("app.kubernetes.io/component")
        if not pending:
            if (action := _open(job, f"{', '.join(waits)} succeeded")):
                plan.opens.append(action)
        elif run is not None:
            failed = [name for name, state in pending.items() if state == JOB_FAILED]
            plan.waiting.setdefault(run, f"{stage} cannot start: {', '.join(failed)} failed" if failed else
                                    f"{stage} waits for " + ", ".join(f"{n} ({s})" for n, s in pending.items()))
    for run, stages in sorted(by_run.items()):
        study = next(iter(stages.values()))["metadata"]["labels"].get("valley.study", "valley")
        blocked = run in plan.waiting and "cannot start" in plan.waiting[run]
        plan.statuses[run] = (study, FAILED if blocked else run_status(states[run]))
    return plan


def reconcile_once(kube, tracker, *, echo=print) -> Plan:
    """One pass: create MLflow runs for specs applied through GitOps, open gates, mirror
    Job states into MLflow (never over a run that was cancelled or already ended)."""
    ensure_gitops_runs(kube, tracker, echo=echo)
    plan = plan_reconcile(kube.list("Job", "app.kubernetes.io/part-of=valley"))
    for action in plan.opens:
        kube.patch_job(action.job, action.patch)
        echo(f"opened {action.job}: {action.reason}")
    for run_name, (study, status) in plan.statuses.items():
        found = tracker.find_by_name(study, run_name)
        if found is None:
            continue
        current = found.info.status
        if current in (status, KILLED):  # a workload ending its attached run is overruled; a cancel is not
            continue
        tracker.set_status(found.info.run_id, status)
        echo(f"{run_name}: MLflow {current} -> {status}")
    return plan


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
