"""The k8s side of `launch`, `status`, `logs` and `cancel` (and their local counterparts)."""

from __future__ import annotations

import time
from dataclasses import replace

from valley.spec import RunSpec
from valley.errors import ValleyError

#: seconds between reconcile passes of `launch --wait`
POLL_SECONDS = 30
METRICS = ("pass_at_1", "completion_rate", "think_tag_rate")

NEEDS_SERVER = ("--tracking-uri: Jobs log into the cluster's MLflow, so launch must record there too: run "
                "`kubectl -n {ns} port-forward svc/valley-mlflow 5000:5000` and pass --tracking-uri http://localhost:5000")


def launch_k8s(runs: list[RunSpec], ctx, tracking_uri: str | None, *, dry_run: bool, wait: bool) -> None:
    """Pre-create each run's MLflow run, then its objects (gated Jobs suspended); idempotent."""
    from manager.images import require_pullable
    from manager.kube import Kube
    from manager.render import render_run
    from manager.render import to_yaml
    from manager.tracking import Tracker, resolve_tracking_uri

    if dry_run:
        print("# dry run: the MLflow run id goes into each run's <run>-mlflow ConfigMap at launch")
        print(to_yaml([obj for run in runs for obj in render_run(run, ctx)]), end="")
        return
    kube = Kube.connect(ctx.namespace)
    if not resolve_tracking_uri(tracking_uri).startswith(("http://", "https://")):
        raise ValleyError(NEEDS_SERVER.format(ns=ctx.namespace))
    require_pullable(ctx.images)
    tracker = Tracker(tracking_uri)
    for run in runs:
        run_id, created = tracker.ensure_run(run)
        objects = render_run(run, replace(ctx, run_id=run_id))
        if created:
            tracker.log_manifests(run_id, to_yaml(objects))
        results = [kube.create(obj) for obj in objects]
        print(f"{run.label}: {run.name}, {'new' if created else 'existing'} MLflow run {run_id}; "
              f"{results.count('created')} object(s) created, {results.count('exists')} already there")
        print(f"  {tracker.run_url(run_id)}")
    study = runs[0].study
    print(f"next: valleyctl status --study {study}  |  valleyctl logs {runs[-1].label} --study {study} --follow"
          "  |  gated Jobs open on `valleyctl reconcile` (the in-cluster CronJob runs it)")
    if wait:
        follow(kube, tracker, runs)


def follow(kube, tracker, runs: list[RunSpec]) -> None:
    """`--wait`: reconcile until every run has ended; exit 1 if any failed."""
    from manager.lifecycle import reconcile_once
    from manager.tracking import FAILED, TERMINAL

    names = {run.name for run in runs}
    while True:
        plan = reconcile_once(kube, tracker)
        ours = {name: status for name, (_, status) in plan.statuses.items() if name in names}
        if len(ours) == len(names) and all(status in TERMINAL for status in ours.values()):
            break
        time.sleep(POLL_SECONDS)
    failed = sorted(name for name, status in ours.items() if status == FAILED)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (valleyctl logs RUN)")


def status_rows(study: str, executor: str, namespace: str, tracking_uri: str | None) -> tuple[list[dict], str]:
    """One row per run of the study: MLflow status and metrics, and Job or local step states."""
    from manager.layout import Layout
    from manager.lifecycle import job_state
    from manager.local import ordered
    from manager.study import study_runs
    from manager.tracking import Tracker

    if executor not in ("auto", "k8s", "local"):
        raise ValleyError(f"--executor: {executor!r}; allowed: auto, k8s, local")
    jobs: dict[str, dict[str, str]] = {}
    note = ""
    if executor != "local":
        from manager.kube import Kube

        try:
            kube = Kube.connect(namespace)
            for job in kube.list("Job", f"valley.study={study}"):
                labels = job["metadata"]["labels"]
                jobs.setdefault(labels["valley.run"], {})[labels["app.kubernetes.io/component"]] = job_state(job)
        except ValleyError as error:
            if executor == "k8s":
                raise
            note = f"Job states not shown: {str(error).split(';')[0]}"
    recorded = {r.data.tags.get("valley.run_name"): r for r in Tracker(tracking_uri).study_runs(study)}
    layout = Layout.at(".")
    rows = []
    for run in ordered(study_runs(study)):
        record = recorded.get(run.name)
        row = {"label": run.label, "name": run.name, "mlflow": record.info.status if record else "not launched"}
        if record:
            row["run_id"] = record.info.run_id
            if "valley.status_note" in record.data.tags:
                row["note"] = record.data.tags["valley.status_note"]
            row.update({m: round(record.data.metrics[m], 4) for m in METRICS if m in record.data.metrics})
        if run.name in jobs:
            row.update(jobs[run.name])
        elif executor != "k8s":
            row.update(local_states(layout, run))
        rows.append(row)
    return rows, note


def local_states(layout, run: RunSpec) -> dict[str, str]:
    from manager.layout import DONE

    states = {"eval": "done" if (layout.eval_dir(run) / DONE).exists() else ""}
    if run.data is not None:
        states["data"] = "done" if (layout.data_dir(run) / DONE).exists() else ""
        states["train"] = "done" if (layout.checkpoint_dir(run) / DONE).exists() else ""
    return states


def print_logs(run: RunSpec, executor: str, namespace: str, follow: bool) -> None:
    if executor == "local":
        return print_local_logs(run, follow)
    from manager.kube import Kube

    kube = Kube.connect(namespace)
    order = {"data": 0, "train": 1, "eval": 2, "grader": 3}
    pods = sorted(kube.list("Pod", f"valley.run={run.name}"),
                  key=lambda p: (order.get(p["metadata"]["labels"].get("app.kubernetes.io/component"), 9),
                                 p["metadata"].get("creationTimestamp", "")))
    if not pods:
        raise ValleyError(f"{run.label}: no pods yet (gated Jobs stay suspended until their dependency "
                          f"succeeds); see `valleyctl status --study {run.study}`")
    if follow:
        pod = pods[-1]
        name = pod["metadata"]["name"]
        while pod["status"].get("phase") == "Pending":
            print(f"waiting for pod {name} (Pending)...", flush=True)
            time.sleep(5)
            pod = kube.get("Pod", name) or pod
        main = pod["spec"]["containers"][0]["name"]
        for chunk in kube.pod_log(name, main, follow=True):
            print(chunk, end="", flush=True)
        return
    for pod in pods:
        for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            print(f"==> {pod['metadata']['name']}/{container['name']} <==")
            for text in kube.pod_log(pod["metadata"]["name"], container["name"]):
                print(text, end="" if text.endswith("\n") else "\n")


def print_local_logs(run: RunSpec, follow: bool) -> None:
    from manager.layout import DONE, Layout

    layout = Layout.at(".")
    logs = [layout.log_file(run, stage) for stage in ("data", "train", "eval")]
    present = [p for p in logs if p.exists()]
    if not present:
        raise ValleyError(f"{run.label}: no local logs under {layout.root / 'logs' / run.name}; "
                          f"launch it with `valleyctl launch --run {run.label} --study {run.study} --executor local`")
    for path in present[:-1] if follow else present:
        print(f"==> {path} <==\n{path.read_text(errors='replace')}", end="")
    if follow:
        path = present[-1]
        print(f"==> {path} <==")
        with path.open(errors="replace") as handle:
            while True:
                text = handle.read()
                if text:
                    print(text, end="", flush=True)
                elif (layout.eval_dir(run) / DONE).exists():
                    return
                else:
                    time.sleep(1)


def cancel(run: RunSpec, executor: str, namespace: str, tracking_uri: str | None) -> None:
    from manager.tracking import KILLED, Tracker

    deleted = 0
    if executor == "k8s":
        from manager.kube import RUN_KINDS, Kube

        kube = Kube.connect(namespace)
        for kind in RUN_KINDS:
            for obj in kube.list(kind, f"valley.run={run.name}"):
                deleted += kube.delete(kind, obj["metadata"]["name"])
    tracker = Tracker(tracking_uri)
    found = tracker.find_run(run)
    if found is not None:
        tracker.set_status(found.info.run_id, KILLED, note="cancelled with valleyctl cancel")
    print(f"{run.label}: deleted {deleted} object(s); MLflow run "
          f"{found.info.run_id + ' marked KILLED' if found else 'not found'}")
