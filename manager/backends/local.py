"""The local backend: a study's steps as `valley` subprocesses on this machine (local_steps), the
independent ones concurrently, recorded into MLflow like the Jobs, logs in `.valley/logs/`."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from typing import Iterator

from manager.backends.base import (
    Backend,
    CancelResult,
    LaunchedRun,
    LaunchResult,
    LogChunk,
    ReconcileResult,
    StepCounts,
    ambiguous,
    cancel_record,
)
from manager.backends.local_watch import LaunchWatch
from manager.layout import DONE, Layout
from valley.cli_kit import on_path
from valley.cores import usable_cores
from valley.errors import ValleyError
from valley.files import write_atomic
from valley.spec import RunSpec
from valley.vocabulary import EXECUTOR_TAG


class LocalBackend(Backend):
    name = "local"

    def __init__(
        self, tracking_uri: str | None = None, *, root: str = ".", console=None, parallel: int | None = None, **kwargs
    ) -> None:
        super().__init__(tracking_uri, **kwargs)
        self.layout = Layout.at(root)
        #: the rich console the step progress draws on (created on first launch)
        self.console = console
        self.cores = usable_cores()
        #: steps run at once: one per core by default (the tiny students' train and eval steps
        #: keep about one core busy each, and a second OpenMP thread slowed torchtune down)
        self.parallel = parallel or self.cores

    def launch(
        self, runs: list[RunSpec], *, dry_run: bool = False, wait: bool = False, timeout: float = 0.0
    ) -> LaunchResult:
        """Runs the steps in the foreground: it always waits, and stops only when they end (or on Ctrl-C)."""
        from manager.backends.local_steps import INTERRUPTED_NOTE, execute, plan_steps

        if dry_run:
            steps = plan_steps(runs, self.layout, {r.name: "<mlflow-run-id>" for r in runs})
            return LaunchResult(dry_run="".join(f"{step.title}: {' '.join(step.command)}\n" for step in steps))
        from manager.tracking import FAILED, FINISHED, KILLED, RUNNING, Tracker
        from valley.cli_kit import console as make_console

        console = self.console or make_console()
        start = time.perf_counter()
        tracker = Tracker(self.tracking_uri)
        launched = []
        for run in runs:
            run_id, created = tracker.ensure_run(run, tags={EXECUTOR_TAG: self.name})
            launched.append(LaunchedRun(run.label, run.name, run_id, created))
            self.layout.write_spec(run)
        run_ids = {r.name: r.run_id for r in launched}
        studies = sorted({r.study for r in runs})
        self.echo(
            f"MLflow {tracker.uri}: {len(runs)} run(s) in experiment(s) {', '.join(f'valley-{s}' for s in studies)}"
        )
        study_runs = [tracker.study_run_id(study) for study in studies]
        # should this process die without closing its runs (kill -9, out of memory), the watcher does
        watch = LaunchWatch(tracker.uri)
        try:
            for run_id in [*run_ids.values(), *study_runs]:
                watch.opened(run_id)
            for study_run in study_runs:
                tracker.set_status(study_run, RUNNING)
            self.echo(
                f"{self.parallel} step(s) at a time, {max(1, self.cores // self.parallel)} thread(s) each "
                f"({self.cores} core(s); --parallel N to change)"
            )
            try:
                with sigterm_interrupts():
                    outcome = execute(
                        plan_steps(runs, self.layout, run_ids),
                        tracker,
                        console=console,
                        parallel=self.parallel,
                        cores=self.cores,
                        watch=watch,
                    )
            except KeyboardInterrupt:
                close_study_runs(tracker, watch, study_runs, KILLED, INTERRUPTED_NOTE)
                raise
            total = time.perf_counter() - start
            write_atomic(
                self.layout.root / "timings.json",
                json.dumps(
                    {
                        "total_s": round(total, 1),
                        "steps_s": {k: round(v, 1) for k, v in outcome.seconds.items()},
                        "intervals_s": {k: [round(t, 1) for t in span] for k, span in outcome.intervals.items()},
                    },
                    indent=2,
                ),
            )
            counts = StepCounts(
                len(outcome.done), len(outcome.reused), len(outcome.failed), len(outcome.skipped), total
            )
            close_study_runs(tracker, watch, study_runs, FINISHED if outcome.ok else FAILED)
        finally:
            watch.close()
        failed = sorted(
            {
                step.split(":", 1)[1]
                for step in [*outcome.failed, *outcome.skipped]
                if step.startswith(("train:", "eval:"))
            }
        )
        return LaunchResult(
            launched,
            steps=counts,
            failed=failed,
            ok=outcome.ok,
            next=f"{tracker.ui_hint(studies[0])}    {on_path('valleyctl')} status --study {studies[0]}",
        )

    def stage_states(self, study: str, runs: list[RunSpec]) -> tuple[dict[str, dict[str, str]], str]:
        return {run.name: self._states(run) for run in runs}, ""

    def _states(self, run: RunSpec) -> dict[str, str]:
        layout = self.layout
        states = {"eval": "done" if (layout.eval_dir(run) / DONE).exists() else ""}
        if run.data is not None:
            states["data"] = "done" if (layout.data_dir(run) / DONE).exists() else ""
            states["train"] = "done" if (layout.checkpoint_dir(run) / DONE).exists() else ""
        return states

    def own_record(self, wanted: str, study: str) -> RunSpec | None:
        """The spec file a local launch wrote (`.valley/specs/<run>.json`) of a run named or labelled `wanted`."""
        specs = []
        for path in sorted(self.layout.root.glob("specs/*.json")):
            try:
                spec = RunSpec.from_json(path.read_text())
            except ValueError:  # not a spec (hand-edited, half-written): not the run asked for
                continue
            if spec.study == study and wanted in (spec.name, spec.label) and spec.name == path.stem:
                specs.append(spec)
        if len(specs) > 1:
            raise ambiguous(wanted, [spec.name for spec in specs])
        return specs[0] if specs else None

    def logs(self, run: RunSpec, *, follow: bool = False, timeout: float = 24 * 3600.0) -> Iterator[LogChunk]:
        layout = self.layout
        present = [p for p in (layout.log_file(run, stage) for stage in ("data", "train", "eval")) if p.exists()]
        if not present:
            raise ValleyError(
                f"{run.label}: no local logs under {layout.root / 'logs' / run.name}; "
                f"launch it with `valleyctl launch --run {run.label} --study {run.study} --executor local`"
            )
        for path in present[:-1] if follow else present:
            yield LogChunk("header", str(path))
            yield LogChunk("text", path.read_text(errors="replace"))
        if not follow:
            return
        path = present[-1]
        yield LogChunk("header", str(path))
        deadline = time.monotonic() + timeout
        with path.open(errors="replace") as handle:
            while True:
                text = handle.read()
                if text:
                    yield LogChunk("text", text)
                elif (layout.eval_dir(run) / DONE).exists():
                    return
                elif time.monotonic() > deadline:
                    raise ValleyError(f"{run.label}: stopped following {path} after the timeout; its run goes on")
                else:
                    time.sleep(1)

    def cancel(self, run: RunSpec) -> CancelResult:
        """Local steps run in the foreground of `launch`; cancel only records the decision."""
        return cancel_record(run, 0, self.tracking_uri, "here", False, f"see `valleyctl status --study {run.study}`")

    def reconcile(self) -> ReconcileResult:
        """Nothing to reconcile: each local step records its own state as it ends."""
        return ReconcileResult(namespace="local")


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a CI timeout, `kill`, a closed terminal's supervisor) ends the launch as Ctrl-C does."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def close_study_runs(tracker, watch: LaunchWatch, study_runs: list[str], status: str, note: str | None = None) -> None:
    for study_run in study_runs:
        tracker.set_status(study_run, status, note=note)
        watch.closed(study_run)
