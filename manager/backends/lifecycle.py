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
