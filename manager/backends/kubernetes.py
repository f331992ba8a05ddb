"""The Kubernetes backend: each run as Jobs (gated ones suspended) plus its ConfigMaps and
grader, recorded in the cluster's MLflow; the reconciler (lifecycle) opens gates and mirrors
Job states into MLflow."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Iterator

from manager.backends.base import (
    Backend,
    CancelResult,
    LaunchedRun,
    LaunchResult,
    LogChunk,
    ReconcileResult,
    ambiguous,
    cancel_record,
)
from manager.backends.lifecycle import LAUNCH_DEADLINE_S, LAUNCH_GRACE_S
from valley.errors import ValleyError, one_line
from valley.spec import RunSpec
from valley.vocabulary import (
    ALL_OBJECTS,
    APP_COMPONENT,
    ATTEMPT_TAG,
    CONFIGMAPS,
    EXECUTOR_TAG,
    LABEL_ANNOTATION,
    LAUNCH_DEADLINE_TAG,
    LAUNCH_DONE,
    LAUNCH_PENDING,
    LAUNCH_TAG,
    NAMESPACE_TAG,
    RUN_LABEL,
    STUDY_LABEL,
    annotation,
    label,
    of_run,
    pods_of_job,
)

#: seconds between reconcile passes of `launch --wait`
POLL_SECONDS = 30
#: seconds between looks at a Pending pod while `logs --follow` waits for it
POD_POLL_SECONDS = 5
#: how long `launch --wait` and `logs --follow` go on by default (--timeout)
WAIT_TIMEOUT = 72 * 3600.0
FOLLOW_TIMEOUT = 24 * 3600.0
#: the order `logs` prints a run's pods in
STAGE_ORDER = {"data": 0, "train": 1, "eval": 2, "grader": 3}

#: waiting reasons a pod does not get out of by itself
HOPELESS = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
}

NEEDS_SERVER = (
    "--tracking-uri: Jobs log into the cluster's MLflow, so launch must record there too: run "
    "`kubectl -n {ns} port-forward svc/valley-mlflow 5000:5000` and pass --tracking-uri http://localhost:5000"
)


class KubernetesBackend(Backend):
    name = "k8s"

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        namespace: str = "valley",
        context=None,
        fallback: Backend | None = None,
        **kwargs,
    ) -> None:
        """`context` is the RenderContext launch renders with; `fallback` answers `status`
        for runs without Jobs, and when no cluster is reachable (`--executor auto`)."""
        super().__init__(tracking_uri, **kwargs)
        self.namespace = namespace
        self.context = context
        self.fallback = fallback
        self._kube = None

    @property
    def kube(self):
        from manager.backends.kube import Kube

        if self._kube is None:
            self._kube = Kube.connect(self.namespace)
        return self._kube

    # ------------------------------------------------------------------------ launch

    def launch(
        self, runs: list[RunSpec], *, dry_run: bool = False, wait: bool = False, timeout: float = WAIT_TIMEOUT
    ) -> LaunchResult:
        """Refuse images a node cannot pull, check every object with a server-side dry-run, then
        record each run's MLflow run, then create its objects (gated Jobs suspended; shared data
        Jobs once). Idempotent; all or nothing: a create that fails undoes what this launch
        created, MLflow runs included."""
        from manager.images import require_pullable
        from manager.render import render_runs
        from manager.tracking import Tracker, resolve_tracking_uri

        ctx = self.context
        if dry_run:  # every check below, each refusal kept, nothing created
            from manager.backends.preflight import preflight

            checked = preflight(self, runs)
            return LaunchResult(dry_run=checked.text(), ok=not checked.refusals)
        kube = self.kube
        if not resolve_tracking_uri(self.tracking_uri).startswith(("http://", "https://")):
            raise ValleyError(NEEDS_SERVER.format(ns=self.namespace))
        require_pullable(ctx.images, ctx.profile.image_pull_policy)
        for obj in render_runs(runs, replace(ctx, run_id="dry-run")):  # namespace, RBAC, admission, validation
            kube.create(obj, dry_run=True)
        tracker = Tracker(self.tracking_uri)
        undo = _Undo(kube, tracker, {run.study for run in runs})
        launched = []
        try:
            # recorded `pending` until every object exists; past the deadline the reconciler may take a pending
            # run with nothing in the namespace for abandoned, so this launch creates nothing after it
            deadline = time.monotonic() + LAUNCH_DEADLINE_S
            pending = {
                LAUNCH_TAG: LAUNCH_PENDING,
                LAUNCH_DEADLINE_TAG: utc_in(LAUNCH_DEADLINE_S),
                NAMESPACE_TAG: self.namespace,
            }
            for run in runs:
                launched.append(self._launch_one(run, tracker, undo, pending, deadline))
            for run_id in undo.pending:
                tracker.set_tags(run_id, {LAUNCH_TAG: LAUNCH_DONE})
        except Exception as error:  # all or nothing, whatever failed (the API, MLflow, quota, RBAC)
            cause = tracker.unreachable() or one_line(error)  # MLflow gone: say so, not its client's retries
            raise ValleyError(f"{cause}; {undo.run()}") from error
        study = runs[0].study
        hint = (
            f"valleyctl status --study {study}  |  valleyctl logs {runs[-1].label} --study {study} --follow"
            "  |  gated Jobs open on `valleyctl reconcile` (the in-cluster CronJob runs it)"
        )
        if not wait:
            return LaunchResult(launched, next=hint)
        failed = self.wait(runs, timeout)
        return LaunchResult(launched, failed=failed, ok=not failed, next=hint)

    def _launch_one(
        self, run: RunSpec, tracker, undo: "_Undo", pending: dict[str, str], deadline: float
    ) -> LaunchedRun:
        from manager.render import render_run, to_yaml
        from manager.tracking import TERMINAL

        kube = self.kube
        before = tracker.find_run(run)
        # a run that ended (cancelled, failed or finished) whose Jobs are gone starts again as a new attempt:
        # its record keeps the status it ended with
        restart = frozenset() if kube.list("Job", of_run(run.name)) else TERMINAL
        run_id, created = tracker.ensure_run(
            run, restart=restart, tags={**pending, EXECUTOR_TAG: self.name}, recorded=undo.recorded(run)
        )
        if not created and before is not None and before.data.tags.get(LAUNCH_TAG) == LAUNCH_PENDING:
            undo.pending.append(run_id)  # an unfinished launch of it: this one finishes it
        objects = render_run(run, replace(self.context, run_id=run_id))
        if created:
            tracker.log_manifests(run_id, to_yaml(objects))
        results = []
        for obj in objects:
            if time.monotonic() > deadline:
                raise ValleyError(
                    f"launch: still creating objects {LAUNCH_DEADLINE_S // 60:.0f} min after recording its runs "
                    "(a slow API server?); stopped before the reconciler may take them for abandoned"
                )
            results.append(kube.create(obj))
            if results[-1] == "created":
                undo.objects.append((obj["kind"], obj["metadata"]["name"], label(obj, RUN_LABEL)))
        attempt, previous = 1, ""
        if created and before is not None:
            attempt = int(before.data.tags.get(ATTEMPT_TAG, "1")) + 1
            previous = f"{before.info.status} run {before.info.run_id}"
        return LaunchedRun(
            run.label,
            run.name,
            run_id,
            created,
            tracker.run_url(run_id),
            results.count("created"),
            results.count("exists"),
            attempt,
            previous,
        )

    def wait(self, runs: list[RunSpec], timeout: float = WAIT_TIMEOUT) -> list[str]:
        """Reconcile until every run has ended; the names of those that failed. Stops with the
        reason when a pod of the runs cannot start or `timeout` seconds passed (the runs go on:
        the reconciler CronJob keeps them in step)."""
        from manager.tracking import FAILED, TERMINAL

        deadline = time.monotonic() + timeout
        names = {run.name for run in runs}
        while True:
            result = self.reconcile()
            ours = {name: status for name, status in result.statuses.items() if name in names}
            if len(ours) == len(names) and all(status in TERMINAL for status in ours.values()):
                return sorted(name for name, status in ours.items() if status == FAILED)
            for run in runs:
                for stage, job in self._stage_jobs(run):
                    for pod in self.kube.list("Pod", pods_of_job(job["metadata"]["name"])):
                        if (why := pod_blocker(pod)) is not None:
                            raise ValleyError(
                                f"stopped waiting: {run.label}'s {stage} pod {pod['metadata']['name']} cannot start "
                                f"({why}); the run stays queued; see `kubectl -n {self.namespace} describe pod "
                                f"{pod['metadata']['name']}`"
                            )
            left = deadline - time.monotonic()
            if left <= 0:
                open_runs = ", ".join(
                    f"{n} {ours.get(n, 'not seen')}" for n in sorted(names) if ours.get(n) not in TERMINAL
                )
                raise ValleyError(
                    f"stopped waiting after the timeout: {open_runs}; they go on in the cluster "
                    "(`valleyctl status`, or wait longer with --timeout)"
                )
            time.sleep(min(POLL_SECONDS, left))

    # ------------------------------------------------------------------------ status

    def stage_states(self, study: str, runs: list[RunSpec]) -> tuple[dict[str, dict[str, str]], str]:
        from manager.backends.lifecycle import run_states

        jobs: dict[str, dict[str, str]] = {}
        note = ""
        try:
            names = {run.name for run in runs}
            found = self.kube.list("Job", ALL_OBJECTS)
            if not found:
                self.kube.require_namespace()
            jobs = {name: states for name, states in run_states(found).items() if name in names}
        except ValleyError as error:
            if self.fallback is None:
                raise
            note = f"Job states not shown: {str(error).split(';')[0]}"
        if self.fallback is not None:
            local, _ = self.fallback.stage_states(study, [r for r in runs if r.name not in jobs])
            jobs = {**local, **jobs}
        return jobs, note

    def own_record(self, wanted: str, study: str) -> RunSpec | None:
        """The spec ConfigMap of a run of `study` named `wanted`, or whose label is `wanted`."""
        from manager.backends.lifecycle import spec_of

        specs = [
            cm
            for cm in self.kube.list("ConfigMap", CONFIGMAPS)
            if cm["metadata"]["name"].endswith("-spec")
            and label(cm, STUDY_LABEL) == study
            and wanted in (cm["metadata"]["name"].removesuffix("-spec"), annotation(cm, LABEL_ANNOTATION))
        ]
        if len(specs) > 1:
            names = sorted(cm["metadata"]["name"].removesuffix("-spec") for cm in specs)
            raise ambiguous(wanted, names)
        return spec_of(specs[0]) if specs else None

    # -------------------------------------------------------------------------- logs

    def logs(self, run: RunSpec, *, follow: bool = False, timeout: float = FOLLOW_TIMEOUT) -> Iterator[LogChunk]:
        from manager.backends.lifecycle import needs
        from manager.render.common import SHARED_JOB_PREFIXES

        if follow:
            yield from self._follow(run, time.monotonic() + timeout)
            return
        kube = self.kube
        shared = sorted(
            {
                name
                for job in kube.list("Job", of_run(run.name))
                for name in needs(job)
                if name.startswith(SHARED_JOB_PREFIXES)
            }
        )
        own = kube.list("Pod", of_run(run.name))
        pods = sorted(
            [pod for name in shared for pod in kube.list("Pod", pods_of_job(name))] + own,
            key=lambda p: (
                STAGE_ORDER.get(label(p, APP_COMPONENT), 9),
                p["metadata"].get("creationTimestamp", ""),
            ),
        )
        if not pods:
            raise ValleyError(
                f"{run.label}: no pods yet (gated Jobs stay suspended until their dependency "
                f"succeeds); see `valleyctl status --study {run.study}`"
            )
        never_started = []
        for pod in pods:
            name = pod["metadata"]["name"]
            waiting = waiting_reasons(pod)
            for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
                yield LogChunk("header", f"{name}/{container['name']}")
                text = kube.pod_log_text(name, container["name"])
                if text is None:
                    yield LogChunk("notice", f"(never started: {waiting.get(container['name'], 'no status yet')})")
                else:
                    yield LogChunk("text", text if text.endswith("\n") else text + "\n")
            main = pod["spec"]["containers"][0]["name"]
            if main in waiting:
                never_started.append(f"{name}: never started ({main}: {waiting[main]})")
        if never_started:
            raise ValleyError("; ".join(never_started) + f"; see `kubectl -n {self.namespace} describe pod` for why")

    def _stage_jobs(self, run: RunSpec) -> list[tuple[str, dict]]:
        """(stage, Job) of the run in the order they run: its shared data Jobs, train, eval."""
        from manager.backends.lifecycle import needs, run_jobs, shared_needs

        own = self.kube.list("Job", of_run(run.name))
        _, by_run = run_jobs(own)
        stages = by_run.get(run.name, {})
        shared = {
            name: job
            for name in sorted({name for job in stages.values() for name in needs(job)})
            if (job := self.kube.get("Job", name)) is not None
        }
        return shared_needs(stages, shared) + [(stage, stages[stage]) for stage in ("train", "eval") if stage in stages]

    def _follow(self, run: RunSpec, deadline: float) -> Iterator[LogChunk]:
        """Stream the stage that is running, then the next, until the run's last stage ends; stop
        with the reason when a stage failed, its pod cannot start, or the deadline passed."""
        from manager.backends.lifecycle import JOB_FAILED, SUCCEEDED, job_state

        streamed: set[str] = set()
        said = ""
        while True:
            stages = self._stage_jobs(run)
            if not stages:
                raise ValleyError(f"{run.label}: no Jobs of {run.name} in namespace {self.namespace}; launch it first")
            current = next(((stage, job) for stage, job in stages if job_state(job) != SUCCEEDED), None)
            if current is None:
                yield LogChunk("notice", f"{run.label}: every stage succeeded")
                return
            stage, job = current
            name = job["metadata"]["name"]
            if job_state(job) == JOB_FAILED:
                raise ValleyError(
                    f"{run.label}: the {stage} Job {name} failed; see `valleyctl status --study {run.study}`"
                )
            pods = self.kube.list("Pod", pods_of_job(name))
            for pod in pods:
                if (why := pod_blocker(pod)) is not None:
                    raise ValleyError(
                        f"{run.label}: pod {pod['metadata']['name']} of the {stage} Job cannot start ({why}); "
                        f"see `kubectl -n {self.namespace} describe pod {pod['metadata']['name']}`"
                    )
            running = [
                p for p in pods if p["status"].get("phase") == "Running" and p["metadata"]["name"] not in streamed
            ]
            if running:
                pod = running[-1]
                pod_name, main = pod["metadata"]["name"], pod["spec"]["containers"][0]["name"]
                streamed.add(pod_name)
                yield LogChunk("header", f"{pod_name}/{main}")
                for chunk in self.kube.pod_log(pod_name, main, follow=True, timeout=deadline - time.monotonic()):
                    yield LogChunk("text", chunk)
            else:
                state = f"waiting for the {stage} Job {name} ({job_state(job)}, {len(pods)} pod(s))"
                if state != said:
                    yield LogChunk("notice", state + "...")
                    said = state
            left = deadline - time.monotonic()
            if left <= 0:
                raise ValleyError(
                    f"{run.label}: stopped following after the timeout; the {stage} Job {name} is "
                    f"{job_state(job)}; follow again with `valleyctl logs {run.label} --follow --timeout ...`"
                )
            if not running:
                time.sleep(min(POD_POLL_SECONDS, left))

    # ------------------------------------------------------------------------ cancel

    def cancel(self, run: RunSpec) -> CancelResult:
        from manager.backends.kube import RUN_KINDS

        kube = self.kube
        deleted = 0
        for kind in RUN_KINDS:
            for obj in kube.list(kind, of_run(run.name)):
                deleted += kube.delete(kind, obj["metadata"]["name"])
        return cancel_record(
            run,
            deleted,
            self.tracking_uri,
            f"in namespace {self.namespace}",
            True,
            "check --namespace, or `valleyctl status --study " + run.study + "`",
        )

    # --------------------------------------------------------------------- reconcile

    def reconcile(self) -> ReconcileResult:
        from manager.backends.lifecycle import reconcile_once
        from manager.tracking import Tracker

        plan = reconcile_once(self.kube, Tracker(self.tracking_uri), echo=self.echo)
        return ReconcileResult(
            self.namespace,
            len(plan.statuses),
            len(plan.opens),
            dict(plan.waiting),
            {name: status for name, (_, status) in plan.statuses.items()},
        )


def pod_blocker(pod: dict) -> str | None:
    """Why a Pending pod will not start by itself (the scheduler found no node, an image cannot
    be pulled, a container's config is broken), or None."""
    status = pod.get("status") or {}
    if status.get("phase") not in (None, "Pending"):
        return None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            if condition.get("reason") == "Unschedulable":
                return f"Unschedulable: {condition.get('message', '')}".rstrip(": ")
    stuck = {c: why for c, why in waiting_reasons(pod).items() if why in HOPELESS}
    if stuck:
        container, why = next(iter(stuck.items()))
        return f"{container}: {why}"
    return None


def waiting_reasons(pod: dict) -> dict[str, str]:
    """container -> why it has not started, for the pod's containers that never ran."""
    status = pod.get("status") or {}
    reasons = {}
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = container.get("state") or {}
        if "waiting" in state and not (container.get("lastState") or {}).get("terminated"):
            reasons[container["name"]] = state["waiting"].get("reason") or "waiting"
    known = {c["name"] for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])}
    for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
        if container["name"] not in known and status.get("phase") in (None, "Pending"):
            reasons[container["name"]] = status.get("phase") or "Pending"
    return reasons


def utc_in(seconds: float) -> str:
    """The UTC time `seconds` from now, ISO 8601 to the second (as the launch deadline tag holds it)."""
    from datetime import datetime, timedelta, timezone

    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Undo:
    """What one launch created, to delete again when a later step fails."""

    def __init__(self, kube, tracker, studies: set[str]) -> None:
        self.kube, self.tracker = kube, tracker
        #: (kind, name, run name or None for a shared object) of the objects this launch created
        self.objects: list[tuple[str, str, str | None]] = []
        #: (run id, label, name) of the MLflow runs this launch created
        self.runs: list[tuple[str, str, str]] = []
        #: ids of the runs recorded `pending` that this launch finishes (made now, or by a launch that failed)
        self.pending: list[str] = []
        self.new_studies = {study for study in studies if not tracker.has_study_run(study)}

    def recorded(self, run: RunSpec):
        """The callback Tracker.ensure_run calls once the run exists, before it fills it in."""

        def made(run_id: str) -> None:
            self.runs.append((run_id, run.label, run.name))
            self.pending.append(run_id)

        return made

    def run(self) -> str:
        """Delete everything this launch created, going on past what fails; what it did and what is left."""
        left, with_objects = [], set()
        for kind, name, run_name in reversed(self.objects):
            try:
                self.kube.delete(kind, name)
            except ValleyError:
                left.append(f"{kind} {self.kube.namespace}/{name}")
                with_objects.add(run_name)
        objects_left = len(left)
        if left:
            left[-1] += " (delete by hand, or relaunch to resume)"
        mlflow_gone = self.tracker.unreachable() is not None
        for run_id, run_label, run_name in self.runs:
            if run_name in with_objects:  # its objects left name it (`<run>-mlflow`): kept for a relaunch
                left.append(f"MLflow run {run_id} ({run_label}, kept with its objects: a relaunch resumes it)")
                continue
            try:
                if mlflow_gone:
                    raise ValleyError("unreachable")
                self.tracker.delete_run(run_id)
            except Exception:  # MLflow itself may be what failed: the run stays recorded `pending`
                left.append(
                    f"MLflow run {run_id} ({run_label}, recorded as a launch that did not complete: a relaunch "
                    f"resumes it, or `valleyctl reconcile` marks it KILLED "
                    f"{(LAUNCH_DEADLINE_S + LAUNCH_GRACE_S) // 60:.0f} min from now)"
                )
        runs_left = len(left) - objects_left
        try:
            for study in self.new_studies:
                if mlflow_gone:
                    raise ValleyError("unreachable")
                if self.tracker.has_study_run(study) and not self.tracker.study_runs(study):
                    self.tracker.delete_run(self.tracker.study_run_id(study))
        except Exception:
            left.append(f"the study run of {', '.join(sorted(self.new_studies))}")
        done = (
            f"deleted {len(self.objects) - objects_left} of {len(self.objects)} object(s) and "
            f"{len(self.runs) - runs_left} of {len(self.runs)} MLflow run(s) it made"
        )
        if not left:
            return f"launch undone: {done}"
        return f"launch partly undone: {done}; left: {', '.join(left)}"
