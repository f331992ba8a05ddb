"""Run commands: render, launch, status, logs, cancel, reconcile.

Bodies parse flags, call a backend (manager.backends: k8s or local) or the renderer, and
print what happened plus the next command. mlflow and kubernetes load inside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from manager.cli.options import (
    COMPARE_OUT,
    ClusterTrackingOpt,
    ExecutorOpt,
    FollowTimeoutOpt,
    FromOpt,
    IsolationOpt,
    JsonOpt,
    ModelOpt,
    NamespaceOpt,
    NodesOpt,
    OffGridOpt,
    ProfileOpt,
    QueueOpt,
    ReadExecutorOpt,
    RunArg,
    RunExecutorOpt,
    RunOpt,
    SizeOpt,
    StudyOpt,
    SubsetOpt,
    TrackingOpt,
    WaitTimeoutOpt,
)
from manager.cli.output import Output, to_jsonable
from valley.errors import ConfigError, ValleyError

DEFAULT_CLUSTER_TRACKING = "http://valley-mlflow:5000"


def _runs(study, size, model, subset, base, run, nodes, off_grid, isolation):
    from manager.selection import Selection, select

    return select(
        Selection(
            study=study,
            size=size,
            model=model,
            subset=subset,
            base=base,
            runs=tuple(run or ()),
            nodes=nodes,
            off_grid=off_grid,
            isolation=isolation,
        )
    )


def _context(namespace: str, cluster_tracking_uri: str, queue: str | None, profile_path: Path | None):
    from manager.images import profile_refs
    from manager.profile import load_profile
    from manager.render import RenderContext

    profile = load_profile(profile_path)
    return RenderContext(
        namespace=namespace,
        images=profile_refs(profile),
        tracking_uri=cluster_tracking_uri,
        queue=queue,
        profile=profile,
    )


def render_command(
    study: StudyOpt = "valley",
    size: SizeOpt = None,
    model: ModelOpt = None,
    subset: SubsetOpt = None,
    base: FromOpt = None,
    run: RunOpt = None,
    off_grid: OffGridOpt = False,
    nodes: NodesOpt = None,
    isolation: IsolationOpt = None,
    queue: QueueOpt = None,
    namespace: NamespaceOpt = "valley",
    cluster_tracking_uri: ClusterTrackingOpt = DEFAULT_CLUSTER_TRACKING,
    profile: ProfileOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write a kustomize directory here.")] = None,
    check: Annotated[bool, typer.Option("--check", help="With --out: exit 1 if DIR differs from the render.")] = False,
) -> None:
    """Print a run's manifests as multi-document YAML, or write them for GitOps.

    \b
    Examples:
      valleyctl render --size 10k --model llama
      valleyctl render --size 10k --model qwen --isolation pod
      valleyctl render --study valley --out k8s/experiments/valley
      valleyctl render --study valley --out k8s/experiments/valley --check
    """
    from manager.gitops import differences, render_tree, write_tree
    from manager.render import render_runs, to_yaml

    runs = _runs(study, size, model, subset, base, run, nodes, off_grid, isolation)
    ctx = _context(namespace, cluster_tracking_uri, queue, profile)
    output = Output()
    if out is None:
        if check:
            raise ConfigError("--check: compares a written directory; add --out DIR")
        output.raw(to_yaml(render_runs(runs, ctx)))
        return
    directory = out.expanduser().resolve()
    files = render_tree(runs, ctx)
    if check:
        diff = differences(files, directory)
        for line in diff:
            output.line(line)
        if diff:
            raise ValleyError(f"{len(diff)} file(s) differ from the render; run the same command without --check")
        output.line(f"{directory}: up to date ({len(files)} files)")
        return
    changes = write_tree(files, directory)
    output.line(f"{directory}: {len(files)} files, {len(changes)} changed")
    for line in changes:
        output.line(f"  {line}")


def launch_command(
    study: StudyOpt = "valley",
    size: SizeOpt = None,
    model: ModelOpt = None,
    subset: SubsetOpt = None,
    base: FromOpt = None,
    run: RunOpt = None,
    off_grid: OffGridOpt = False,
    nodes: NodesOpt = None,
    isolation: IsolationOpt = None,
    queue: QueueOpt = None,
    executor: ExecutorOpt = "k8s",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be submitted; change nothing.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="k8s: follow the runs to the end, opening gates.")] = False,
    timeout: WaitTimeoutOpt = "72h",
    namespace: NamespaceOpt = "valley",
    tracking_uri: TrackingOpt = None,
    cluster_tracking_uri: ClusterTrackingOpt = DEFAULT_CLUSTER_TRACKING,
    profile: ProfileOpt = None,
    as_json: JsonOpt = False,
    parallel: Annotated[
        Optional[int], typer.Option("--parallel", min=1, help="local: steps run at once (default: one per core).")
    ] = None,
) -> None:
    """Record each run in MLflow, then run it: as Jobs on the cluster or as local processes.

    \b
    Examples:
      valleyctl launch --size 10k --model llama
      valleyctl launch --size 10k --model qwen --isolation pod --nodes 2
      valleyctl launch --size 6k --model qwen --subset correct --from qwen-30k --dry-run
      valleyctl launch --study mini --executor local
      valleyctl launch --study mini --executor local --parallel 1
    """
    from manager.backends import backend
    from manager.study import ordered

    if parallel is not None and executor != "local":
        raise ConfigError(
            "--parallel: steps run concurrently only with --executor local; drop it or add --executor local"
        )
    if executor == "local" and (wait or queue):
        flag = "--wait" if wait else "--queue"
        raise ConfigError(
            f"{flag}: only for --executor k8s (a local launch runs its steps in the foreground); drop {flag}"
        )
    runs = ordered(_runs(study, size, model, subset, base, run, nodes, off_grid, isolation))
    out = Output(as_json)
    chosen = backend(
        executor,
        tracking_uri=tracking_uri,
        namespace=namespace,
        echo=out.line,
        console=out.console if executor == "local" else None,
        parallel=parallel,
        context=_context(namespace, cluster_tracking_uri, queue, profile) if executor == "k8s" else None,
    )
    result = chosen.launch(runs, dry_run=dry_run, wait=wait, timeout=timeout)
    if result.dry_run is not None:
        out.result(to_jsonable(result), lambda: out.raw(result.dry_run))
        if not result.ok:
            raise ValleyError("dry run: the real launch would be refused for the reasons listed; fix them and rerun")
        return
    # a local launch that ended well is compared at once (a cluster's runs end later: `valleyctl compare`)
    compared = _compare(runs, tracking_uri) if result.steps is not None and result.ok else {}
    out.result(
        {**to_jsonable(result), **({"compare": compared} if compared else {})},
        lambda: _print_launch(out, result, compared),
    )
    if result.steps is not None and not result.ok:
        raise SystemExit(1)
    if result.failed:
        raise ValleyError(f"failed: {', '.join(result.failed)}; see `valleyctl logs RUN`")


def _compare(runs, tracking_uri: str | None) -> dict:
    """study -> what `valleyctl compare --study S` reports, for the studies of `runs`."""
    from manager.compare import compare_study

    return {
        study: compare_study(study, tracking_uri, COMPARE_OUT, log_to_study_run=True)
        for study in sorted({r.study for r in runs})
    }


def _print_launch(out: Output, result, compared: dict) -> None:
    from manager.compare import render

    for comparison in compared.values():
        render(comparison, out.console)
    if result.steps is not None:
        steps = result.steps
        out.line(
            f"{steps.done} step(s) run, {steps.reused} reused, {steps.failed} failed, "
            f"{steps.skipped} skipped in {steps.seconds:.0f} s"
        )
    else:
        for launched in result.runs:
            attempt = f" (attempt {launched.attempt} after {launched.previous})" if launched.previous else ""
            out.line(
                f"{launched.label}: {launched.name}, {'new' if launched.created else 'existing'} MLflow run "
                f"{launched.run_id}{attempt}; {launched.objects_created} object(s) created, "
                f"{launched.objects_existing} already there"
            )
            out.line(f"  {launched.url}")
    out.hint(result.next)


def status_command(
    study: StudyOpt = "valley",
    executor: ReadExecutorOpt = "auto",
    namespace: NamespaceOpt = "valley",
    tracking_uri: TrackingOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A table of the study's runs: MLflow state, Job states, key metrics.

    \b
    Examples:
      valleyctl status --study mini
      valleyctl status --json
    """
    from manager.backends import backend

    report = backend(executor, tracking_uri=tracking_uri, namespace=namespace).status(study)
    out = Output(as_json)
    out.result([row.as_dict() for row in report.rows], lambda: _print_status(out, report))


def _print_status(out: Output, report) -> None:
    from rich.table import Table

    table = Table(title=f"study {report.study}")
    columns = ["run", "mlflow", "data", "train", "eval", "pass@1", "completion", "think-tag", "why"]
    for column in columns:
        table.add_column(column)
    for row in (r.as_dict() for r in report.rows):
        row["note"] = row.get("failure") or row.get("note")  # why a run failed, else why it has its status
        table.add_row(
            *(
                str(row.get(c, "")) if row.get(c) is not None else ""
                for c in (
                    "label",
                    "mlflow",
                    "data",
                    "train",
                    "eval",
                    "pass_at_1",
                    "completion_rate",
                    "think_tag_rate",
                    "note",
                )
            )
        )
    out.table(table, width=160)  # piped or logged: keep run labels whole
    if report.note:
        out.line(report.note)


def logs_command(
    run: RunArg,
    study: StudyOpt = "valley",
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream the stage that runs, then the next, until the run ends.")
    ] = False,
    timeout: FollowTimeoutOpt = "24h",
    executor: RunExecutorOpt = None,
    namespace: NamespaceOpt = "valley",
    tracking_uri: TrackingOpt = None,
) -> None:
    """Print a run's logs (data, train, eval), from its pods or the local log files.

    \b
    Examples:
      valleyctl logs qwen-10k --follow
      valleyctl logs tiny-qwen-40 --study mini
    """
    from manager.backends import backend

    out = Output()
    chosen = backend(
        executor or _launched_with(run, study, tracking_uri), namespace=namespace, tracking_uri=tracking_uri
    )
    for chunk in chosen.logs(chosen.find_run(run, study), follow=follow, timeout=timeout):
        if chunk.kind == "header":
            out.line(f"==> {chunk.text} <==")
        elif chunk.kind == "notice":
            out.line(chunk.text)  # a wait, or a container that never started
        else:
            out.raw(chunk.text)


def cancel_command(
    run: RunArg,
    study: StudyOpt = "valley",
    executor: RunExecutorOpt = None,
    namespace: NamespaceOpt = "valley",
    tracking_uri: TrackingOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a run's Jobs (with their pods) and mark its MLflow run KILLED.

    \b
    Examples:
      valleyctl cancel qwen-10k
      valleyctl cancel tiny-qwen-40 --study mini
    """
    from manager.backends import backend

    chosen = backend(
        executor or _launched_with(run, study, tracking_uri), tracking_uri=tracking_uri, namespace=namespace
    )
    result = chosen.cancel(chosen.find_run(run, study))
    out = Output(as_json)
    if result.marked:
        recorded = f"{result.run_id} marked KILLED"
    elif result.run_id:
        recorded = f"{result.run_id} already {result.previous}, left as it is"
    else:
        recorded = "not found"
    out.result(result, lambda: out.line(f"{result.label}: deleted {result.deleted} object(s); MLflow run {recorded}"))


def reconcile_command(
    namespace: NamespaceOpt = "valley", tracking_uri: TrackingOpt = None, as_json: JsonOpt = False
) -> None:
    """One idempotent pass: open gated Jobs whose dependency succeeded, mirror Job states
    into MLflow, create MLflow runs for specs applied from git. Run by the CronJob.

    Example:
      VALLEY_NAMESPACE=valley valleyctl reconcile
    """
    from manager.backends import backend

    out = Output(as_json)
    result = backend("k8s", tracking_uri=tracking_uri, namespace=namespace, echo=out.line).reconcile()
    out.result(result, lambda: _print_reconcile(out, result))


def _print_reconcile(out: Output, result) -> None:
    for run_name, why in sorted(result.waiting.items()):
        out.line(f"{run_name}: {why}")
    out.line(f"reconciled {result.runs} run(s) in {result.namespace}; opened {result.opened} Job(s)")


def _launched_with(wanted: str, study: str, tracking_uri: str | None) -> str:
    """The executor a run was launched with, as its MLflow record says; k8s when no record answers
    (no local store here, the tracking server down: the cluster is the default)."""
    from mlflow.exceptions import MlflowException

    from manager.tracking import Tracker, require_reachable, resolve_tracking_uri
    from valley.vocabulary import EXECUTOR_TAG

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return "k8s"
    try:
        require_reachable(uri)
        records = Tracker(uri).recorded(study, wanted)
    except (ValleyError, MlflowException):
        return "k8s"
    return records[0].data.tags.get(EXECUTOR_TAG, "k8s") if records else "k8s"
