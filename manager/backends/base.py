"""The one interface every backend keeps (the Kubeflow SDK's shape): launch, status, logs,
cancel, reconcile. Each verb returns a typed result; the CLI decides how to print it.

The MLflow side of `status` is the same for every backend (one row per run of the study,
its recorded state and key metrics); a backend adds the states of its stages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from valley.errors import ConfigError, ValleyError
from valley.spec import RunSpec
from valley.vocabulary import FAILURE_TAG, LAUNCH_PENDING, LAUNCH_TAG, RUN_NAME_TAG, STATUS_NOTE_TAG

#: the metrics `status` shows beside each run
METRICS = ("pass_at_1", "completion_rate", "think_tag_rate")


def _quiet(line: str) -> None:
    pass


@dataclass(frozen=True)
class LaunchedRun:
    """A run as launch left it: its MLflow run and (k8s) how many objects were created."""

    label: str
    name: str
    run_id: str
    created: bool
    url: str = ""
    objects_created: int = 0
    objects_existing: int = 0
    #: a relaunch after cancel or failure is a new attempt of the run: its number, and the
    #: status and id of the attempt it follows ("KILLED run <id>")
    attempt: int = 1
    previous: str = ""


@dataclass(frozen=True)
class StepCounts:
    """What the local backend did with a launch's steps."""

    done: int
    reused: int
    failed: int
    skipped: int
    seconds: float


@dataclass(frozen=True)
class LaunchResult:
    runs: list[LaunchedRun] = field(default_factory=list)
    #: `--dry-run`: what would be submitted, as text; nothing was changed
    dry_run: str | None = None
    steps: StepCounts | None = None
    #: run names that ended FAILED (`--wait`, or a local step)
    failed: list[str] = field(default_factory=list)
    ok: bool = True
    next: str = ""


@dataclass(frozen=True)
class RunRow:
    """One run of a study in `valleyctl status`."""

    label: str
    name: str
    mlflow: str
    run_id: str | None = None
    note: str | None = None
    #: why the run failed: the failed Job's stage, reason, container and exit code
    failure: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    #: stage -> state (Job state, or `done` for a finished local step)
    stages: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        row: dict = {"label": self.label, "name": self.name, "mlflow": self.mlflow}
        if self.run_id is not None:
            row["run_id"] = self.run_id
        if self.note is not None:
            row["note"] = self.note
        if self.failure is not None:
            row["failure"] = self.failure
        return {**row, **self.metrics, **self.stages}


@dataclass(frozen=True)
class StatusReport:
    study: str
    rows: list[RunRow]
    #: why part of the picture is missing (e.g. no cluster reachable for `--executor auto`)
    note: str = ""


@dataclass(frozen=True)
class LogChunk:
    """A piece of a run's logs: `header` names the next source (pod/container or file),
    `notice` is a line about the wait, `text` is log text as written."""

    kind: str
    text: str


@dataclass(frozen=True)
class CancelResult:
    label: str
    deleted: int
    run_id: str | None
    #: the MLflow status the run had before cancel (None when no run was recorded)
    previous: str | None = None
    #: True when the run was active and is now KILLED; a run that had ended is left as it was
    marked: bool = False


@dataclass
class ReconcileResult:
    namespace: str
    runs: int = 0
    opened: int = 0
    #: run name -> what it waits for
    waiting: dict[str, str] = field(default_factory=dict)
    #: run name -> MLflow status after the pass
    statuses: dict[str, str] = field(default_factory=dict)


class Backend(ABC):
    """Where a study's runs execute. `echo` receives progress lines while a verb works."""

    name: str

    def __init__(self, tracking_uri: str | None = None, *, echo: Callable[[str], None] = _quiet) -> None:
        self.tracking_uri = tracking_uri
        self.echo = echo

    @abstractmethod
    def launch(
        self, runs: list[RunSpec], *, dry_run: bool = False, wait: bool = False, timeout: float = 0.0
    ) -> LaunchResult:
        """Record each run in MLflow, then start it; idempotent (a relaunch reuses what exists).
        `wait`: follow the runs to their end, for at most `timeout` seconds."""

    @abstractmethod
    def stage_states(self, study: str, runs: list[RunSpec]) -> tuple[dict[str, dict[str, str]], str]:
        """(run name -> stage -> state, note) for the runs this backend knows about."""

    @abstractmethod
    def logs(self, run: RunSpec, *, follow: bool = False, timeout: float = 0.0) -> Iterator[LogChunk]:
        """The run's logs, stage by stage; with `follow`, the stage that runs until the run ends,
        for at most `timeout` seconds."""

    @abstractmethod
    def cancel(self, run: RunSpec) -> CancelResult:
        """Stop the run's work and mark its MLflow run KILLED."""

    @abstractmethod
    def reconcile(self) -> ReconcileResult:
        """One idempotent pass bringing MLflow and the gates in line with what runs."""

    def own_record(self, wanted: str, study: str) -> RunSpec | None:
        """A run of `study` this backend holds the spec of, by label or name (a run off the grid)."""
        return None

    def find_run(self, wanted: str, study: str) -> RunSpec:
        """A run by label or name: the study's grid first, then the specs this backend holds (spec
        ConfigMaps, local spec files), then the specs recorded in MLflow; else one line listing labels."""
        from manager.study import ordered, study_runs
        from manager.tracking import Tracker, resolve_tracking_uri

        grid = ordered(study_runs(study))
        for run in grid:
            if wanted in (run.label, run.name):
                return run
        found = self.own_record(wanted, study)
        uri = resolve_tracking_uri(self.tracking_uri)
        if found is None and not (uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists()):
            records = Tracker(uri).recorded(study, wanted)
            if len(records) > 1:
                names = sorted(r.data.tags.get(RUN_NAME_TAG) for r in records)
                raise ambiguous(wanted, names)
            found = Tracker(uri).recorded_spec(records[0]) if records else None
        if found is None:
            raise ConfigError(
                f"run: {wanted!r} is not a run of study {study!r}; allowed: {', '.join(r.label for r in grid)}, "
                f"or the name of a run launched off the grid (`valleyctl status --study {study}` lists them)"
            )
        return found

    def status(self, study: str) -> StatusReport:
        """One row per run of the study (the grid's, then those launched off it): MLflow status and
        metrics, and stage states."""
        from manager.study import ordered, study_runs
        from manager.tracking import Tracker

        tracker = Tracker(self.tracking_uri)
        recorded = {r.data.tags.get(RUN_NAME_TAG): r for r in tracker.study_runs(study)}
        runs = ordered(study_runs(study))
        grid = {run.name for run in runs}
        unreadable = []
        for name, record in recorded.items():
            if name not in grid:
                try:
                    runs.append(tracker.recorded_spec(record))
                except ValleyError as error:
                    unreadable.append(str(error))
        states, note = self.stage_states(study, runs)
        if unreadable:
            note = "; ".join(filter(None, [note, *unreadable]))
        evaluated = {run_id: metrics for run_id, (_, metrics) in tracker.evaluations(study).items()}
        rows = []
        for run in runs:
            record = recorded.get(run.name)
            if record is None:
                rows.append(RunRow(run.label, run.name, "not launched", stages=states.get(run.name, {})))
                continue
            rows.append(
                RunRow(
                    run.label,
                    run.name,
                    record.info.status,
                    run_id=record.info.run_id,
                    note=record.data.tags.get(STATUS_NOTE_TAG) or launch_note(record),
                    failure=record.data.tags.get(FAILURE_TAG),
                    metrics={
                        m: round(value, 4)
                        for m in METRICS
                        if (value := evaluated.get(record.info.run_id, {}).get(m)) is not None
                    },
                    stages=states.get(run.name, {}),
                )
            )
        return StatusReport(study, rows, note)


def cancel_record(
    run: RunSpec, deleted: int, tracking_uri: str | None, where: str, needs_objects: bool, check: str
) -> CancelResult:
    """Mark the run's MLflow run KILLED if it is still active (and, `needs_objects`, something
    of it was deleted); a run that ended keeps its status. Nothing deleted and nothing marked
    is an error naming where it looked."""
    from manager.tracking import ACTIVE, KILLED, Tracker

    tracker = Tracker(tracking_uri)
    found = tracker.find_run(run)
    status = found.info.status if found is not None else None
    unfinished = found is not None and found.data.tags.get(LAUNCH_TAG) == LAUNCH_PENDING  # may have no objects
    marked = status in ACTIVE and (deleted > 0 or not needs_objects or unfinished)
    if marked:
        tracker.set_status(found.info.run_id, KILLED, note="cancelled with valleyctl cancel")
    elif deleted == 0:
        recorded = f"its MLflow run {found.info.run_id} is {status}" if found is not None else "no MLflow run recorded"
        raise ValleyError(
            f"{run.label}: nothing to cancel {where}: no objects of {run.name} there and {recorded}; {check}"
        )
    return CancelResult(run.label, deleted, found.info.run_id if found else None, status, marked=marked)


def ambiguous(wanted: str, names: list[str]) -> ConfigError:
    """The error for a label several runs share (off the grid, `--nodes`): name one of them."""
    return ConfigError(f"run: {wanted!r} is the label of {len(names)} runs; name one: {', '.join(sorted(names))}")


def launch_note(record) -> str | None:
    """Why a run recorded by a launch that did not complete has its status."""
    if record.data.tags.get(LAUNCH_TAG) != LAUNCH_PENDING:
        return None
    return "launch not completed (or still going on): a relaunch resumes it"
