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
    cancel_record,
)
from valley.errors import ValleyError
from valley.spec import RunSpec
from valley.vocabulary import ALL_OBJECTS, APP_COMPONENT, ATTEMPT_TAG, label, of_run, pods_of_job

#: seconds between reconcile passes of `launch --wait`
POLL_SECONDS = 30
#: seconds between looks at a Pending pod while `logs --follow` waits for it
POD_POLL_SECONDS = 5
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

    def launch(self, runs: list[RunSpec], *, dry_run: bool = False, wait: bool = False) -> LaunchResult:
        """Refuse images a node cannot pull, check every object with a server-side dry-run, then
        record each run's MLflow run, then create its objects (gated Jobs suspended; shared data
        Jobs once). Idempotent; all or nothing: a create that fails undoes what this launch
        created, MLflow runs included."""
        from manager.images import require_pullable
        from manager.render import render_runs, to_yaml
        from manager.tracking import Tracker, resolve_tracking_uri

        ctx = self.context
        if dry_run:
            return LaunchResult(
                dry_run="# dry run: the MLflow run id goes into each run's <run>-mlflow ConfigMap at launch\n"
                + to_yaml(render_runs(runs, ctx))
            )
        kube = self.kube
        if not resolve_tracking_uri(self.tracking_uri).startswith(("http://", "https://")):
            raise ValleyError(NEEDS_SERVER.format(ns=self.namespace))
        require_pullable(ctx.images)
        for obj in render_runs(runs, replace(ctx, run_id="dry-run")):  # namespace, RBAC, admission, validation
            kube.create(obj, dry_run=True)
        tracker = Tracker(self.tracking_uri)
        undo = _Undo(kube, tracker, {run.study for run in runs})
        launched = []
        try:
            for run in runs:
                launched.append(self._launch_one(run, tracker, undo))
        except ValleyError as error:
            raise ValleyError(f"{error}; {undo.run()}") from error
        study = runs[0].study
        hint = (
            f"valleyctl status --study {study}  |  valleyctl logs {runs[-1].label} --study {study} --follow"
            "  |  gated Jobs open on `valleyctl reconcile` (the in-cluster CronJob runs it)"
        )
        if not wait:
            return LaunchResult(launched, next=hint)
        failed = self.wait(runs)
        return LaunchResult(launched, failed=failed, ok=not failed, next=hint)

    def _launch_one(self, run: RunSpec, tracker, undo: "_Undo") -> LaunchedRun:
        from manager.render import render_run, to_yaml
        from manager.tracking import FAILED, KILLED

        kube = self.kube
        before = tracker.find_run(run)
        # a cancelled or failed run whose Jobs are gone starts again as a new attempt
        restart = frozenset() if kube.list("Job", of_run(run.name)) else frozenset({KILLED, FAILED})
        run_id, created = tracker.ensure_run(run, restart=restart)
        if created:
            undo.runs.append(run_id)
        objects = render_run(run, replace(self.context, run_id=run_id))
        if created:
            tracker.log_manifests(run_id, to_yaml(objects))
        results = []
        for obj in objects:
            results.append(kube.create(obj))
            if results[-1] == "created":
                undo.objects.append((obj["kind"], obj["metadata"]["name"]))
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

    def wait(self, runs: list[RunSpec]) -> list[str]:
        """Reconcile until every run has ended; the names of those that failed."""
        from manager.tracking import FAILED, TERMINAL

        names = {run.name for run in runs}
        while True:
            result = self.reconcile()
            ours = {name: status for name, status in result.statuses.items() if name in names}
            if len(ours) == len(names) and all(status in TERMINAL for status in ours.values()):
                return sorted(name for name, status in ours.items() if status == FAILED)
            time.sleep(POLL_SECONDS)

    # ------------------------------------------------------------------------ status

    def stage_states(self, study: str, runs: list[RunSpec]) -> tuple[dict[str, dict[str, str]], str]:
        from manager.backends.lifecycle import run_states

        jobs: dict[str, dict[str, str]] = {}
        note = ""
        try:
            names = {run.name for run in runs}
            jobs = {
                name: states for name, states in run_states(self.kube.list("Job", ALL_OBJECTS)).items() if name in names
            }
        except ValleyError as error:
            if self.fallback is None:
                raise
            note = f"Job states not shown: {str(error).split(';')[0]}"
        if self.fallback is not None:
            local, _ = self.fallback.stage_states(study, [r for r in runs if r.name not in jobs])
            jobs = {**local, **jobs}
        return jobs, note

    # -------------------------------------------------------------------------- logs

    def logs(self, run: RunSpec, *, follow: bool = False) -> Iterator[LogChunk]:
        from manager.backends.lifecycle import needs
        from manager.render.common import SHARED_JOB_PREFIXES

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
        if follow:
            pod = pods[-1]
            name = pod["metadata"]["name"]
            while pod["status"].get("phase") == "Pending":
                stuck = {c: why for c, why in waiting_reasons(pod).items() if why in HOPELESS}
                if stuck:
                    container, why = next(iter(stuck.items()))
                    raise ValleyError(
                        f"{name}: never started ({container}: {why}); "
                        f"see `kubectl -n {self.namespace} describe pod {name}`"
                    )
                yield LogChunk("notice", f"waiting for pod {name} (Pending)...")
                time.sleep(POD_POLL_SECONDS)
                pod = kube.get("Pod", name) or pod
            main = pod["spec"]["containers"][0]["name"]
            for chunk in kube.pod_log(name, main, follow=True):
                yield LogChunk("text", chunk)
            return
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


class _Undo:
    """What one launch created, to delete again when a later create fails."""

    def __init__(self, kube, tracker, studies: set[str]) -> None:
        self.kube, self.tracker = kube, tracker
        self.objects: list[tuple[str, str]] = []
        self.runs: list[str] = []
        self.new_studies = {study for study in studies if not tracker.has_study_run(study)}

    def run(self) -> str:
        for kind, name in reversed(self.objects):
            self.kube.delete(kind, name)
        for run_id in self.runs:
            self.tracker.delete_run(run_id)
        for study in self.new_studies:
            if self.tracker.has_study_run(study) and not self.tracker.study_runs(study):
                self.tracker.delete_run(self.tracker.study_run_id(study))
        return (
            f"launch undone: deleted the {len(self.objects)} object(s) and {len(self.runs)} MLflow run(s) "
            "it had created"
        )
