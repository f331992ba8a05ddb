"""The Kubernetes backend: each run as Jobs (gated ones suspended) plus its ConfigMaps and
grader, recorded in the cluster's MLflow; the reconciler (lifecycle) opens gates and mirrors
Job states into MLflow."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Iterator

from manager.backends.base import Backend, CancelResult, LaunchResult, LaunchedRun, LogChunk, ReconcileResult
from valley.errors import ValleyError
from valley.spec import RunSpec

#: seconds between reconcile passes of `launch --wait`
POLL_SECONDS = 30
#: seconds between looks at a Pending pod while `logs --follow` waits for it
POD_POLL_SECONDS = 5
#: the order `logs` prints a run's pods in
STAGE_ORDER = {"data": 0, "train": 1, "eval": 2, "grader": 3}

NEEDS_SERVER = ("--tracking-uri: Jobs log into the cluster's MLflow, so launch must record there too: run "
                "`kubectl -n {ns} port-forward svc/valley-mlflow 5000:5000` and pass --tracking-uri http://localhost:5000")


class KubernetesBackend(Backend):
    name = "k8s"

    def __init__(self, tracking_uri: str | None = None, *, namespace: str = "valley", context=None,
                 fallback: Backend | None = None, **kwargs) -> None:
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
        """Pre-create each run's MLflow run, then its objects (gated Jobs suspended); idempotent."""
        from manager.images import require_pullable
        from manager.render import render_run, render_runs, to_yaml
        from manager.tracking import Tracker, resolve_tracking_uri

        ctx = self.context
        if dry_run:
            return LaunchResult(dry_run="# dry run: the MLflow run id goes into each run's <run>-mlflow ConfigMap at launch\n"
                                + to_yaml(render_runs(runs, ctx)))
        kube = self.kube
        if not resolve_tracking_uri(self.tracking_uri).startswith(("http://", "https://")):
            raise ValleyError(NEEDS_SERVER.format(ns=self.namespace))
        require_pullable(ctx.images)
        tracker = Tracker(self.tracking_uri)
        launched = []
        for run in runs:
            run_id, created = tracker.ensure_run(run)
            objects = render_run(run, replace(ctx, run_id=run_id))
            if created:
                tracker.log_manifests(run_id, to_yaml(objects))
            results = [kube.create(obj) for obj in objects]
            launched.append(LaunchedRun(run.label, run.name, run_id, created, tracker.run_url(run_id),
                                        results.count("created"), results.count("exists")))
        study = runs[0].study
        hint = (f"valleyctl status --study {study}  |  valleyctl logs {runs[-1].label} --study {study} --follow"
                "  |  gated Jobs open on `valleyctl reconcile` (the in-cluster CronJob runs it)")
        if not wait:
            return LaunchResult(launched, next=hint)
        failed = self.wait(runs)
        return LaunchResult(launched, failed=failed, ok=not failed, next=hint)

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
            jobs = {name: states for name, states in run_states(self.kube.list("Job", "app.kubernetes.io/part-of=valley")).items()
                    if name in names}
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
        kube = self.kube
        pods = sorted(kube.list("Pod", f"valley.run={run.name}"),
                      key=lambda p: (STAGE_ORDER.get(p["metadata"]["labels"].get("app.kubernetes.io/component"), 9),
                                     p["metadata"].get("creationTimestamp", "")))
        if not pods:
            raise ValleyError(f"{run.label}: no pods yet (gated Jobs stay suspended until their dependency "
                              f"succeeds); see `valleyctl status --study {run.study}`")
        if follow:
            pod = pods[-1]
            name = pod["metadata"]["name"]
            while pod["status"].get("phase") == "Pending":
                yield LogChunk("notice", f"waiting for pod {name} (Pending)...")
                time.sleep(POD_POLL_SECONDS)
                pod = kube.get("Pod", name) or pod
            main = pod["spec"]["containers"][0]["name"]
            for chunk in kube.pod_log(name, main, follow=True):
                yield LogChunk("text", chunk)
            return
        for pod in pods:
            for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
                yield LogChunk("header", f"{pod['metadata']['name']}/{container['name']}")
                for text in kube.pod_log(pod["metadata"]["name"], container["name"]):
                    yield LogChunk("text", text if text.endswith("\n") else text + "\n")

    # ------------------------------------------------------------------------ cancel

    def cancel(self, run: RunSpec) -> CancelResult:
        from manager.backends.kube import RUN_KINDS
        from manager.tracking import KILLED, Tracker

        kube = self.kube
        deleted = 0
        for kind in RUN_KINDS:
            for obj in kube.list(kind, f"valley.run={run.name}"):
                deleted += kube.delete(kind, obj["metadata"]["name"])
        tracker = Tracker(self.tracking_uri)
        found = tracker.find_run(run)
        if found is None:
            return CancelResult(run.label, deleted, None)
        tracker.set_status(found.info.run_id, KILLED, note="cancelled with valleyctl cancel")
        return CancelResult(run.label, deleted, found.info.run_id, found.info.status, marked=True)

    # --------------------------------------------------------------------- reconcile

    def reconcile(self) -> ReconcileResult:
        from manager.backends.lifecycle import reconcile_once
        from manager.tracking import Tracker

        plan = reconcile_once(self.kube, Tracker(self.tracking_uri), echo=self.echo)
        return ReconcileResult(self.namespace, len(plan.statuses), len(plan.opens), dict(plan.waiting),
                               {name: status for name, (_, status) in plan.statuses.items()})
