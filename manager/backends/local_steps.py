"""The local backend's steps: a study's runs as subprocesses of the same `valley` commands the
Jobs run, on this machine, recorded into the same kind of MLflow runs.

The stages are manager.layout's, the same the Jobs run: `valley model fetch` once per preset,
`valley data build` once per subset, `valley data lcb`, `valley train` (base runs before the runs
continued from them), `valley eval`. Independent steps (the students' chains, evals of
different runs) run concurrently, up to `--parallel` at once, each with its share of the cores
and its own log. Each step writes a `.done` marker when it succeeds, so rerunning the same
launch resumes. A failed step marks its MLflow run FAILED with the log path and skips only
what depends on it; unrelated chains go on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from manager.backends.local_watch import LaunchWatch, stop_groups
from manager.layout import Layout, done_marker, is_done, mark_done, plan_stages
from manager.tracking import FAILED, FINISHED, KILLED, RUNNING
from valley.spec import RunSpec

VALLEY = [sys.executable, "-m", "valley"]


@dataclass(frozen=True)
class Step:
    """One `valley` command: what it writes, which MLflow run it logs into, what it needs."""

    key: str
    stage: str
    title: str
    command: tuple[str, ...]
    out_dir: Path
    log: Path
    run_name: str | None = None
    run_id: str | None = None
    needs: tuple[str, ...] = ()
    #: what the `.done` marker must hold: the MLflow run id for train and eval, so a run
    #: recreated in a fresh store is trained and evaluated again into the new run
    token: str = ""


def plan_steps(runs: list[RunSpec], layout: Layout, run_ids: dict[str, str]) -> list[Step]:
    """The study's stages (manager.layout) as commands here, in execution order (pure)."""
    steps = []
    for stage in plan_stages(runs, layout.paths, lambda run: str(layout.spec_file(run))):
        run = stage.run
        if stage.kind in ("fetch", "lcb"):  # attached to no run: nothing of theirs is logged to MLflow
            what = stage.key.split(":", 1)[1]
            title, log, run_name, run_id = (
                f"{stage.kind} {what}",
                layout.root / "logs" / f"{stage.kind}-{what}.log",
                None,
                None,
            )
        else:
            title = f"data {run.subset_dir_name}" if stage.kind == "data" else f"{stage.kind} {run.label}"
            log, run_name, run_id = layout.log_file(run, stage.kind), run.name, run_ids[run.name]
        token = run_id if stage.kind in ("train", "eval") else ""
        steps.append(
            Step(
                stage.key,
                stage.kind,
                title,
                (*VALLEY, *stage.args),
                Path(stage.out),
                log,
                run_name,
                run_id,
                stage.needs,
                token or "",
            )
        )
    return steps


def step_env(step: Step, tracking_uri: str, threads: int) -> dict[str, str]:
    """The workload's environment: this step's MLflow run (and never an inherited one), and its
    share of the cores for torch's and vLLM's OpenMP threads unless the caller set OMP_NUM_THREADS."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"}
    }
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env.setdefault("OMP_NUM_THREADS", str(threads))
    if step.run_id:
        env["MLFLOW_RUN_ID"] = step.run_id
    return env


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, Path] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    #: step key -> (start, end) in seconds since the steps began, for the steps that ran and succeeded
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def execute(
    steps: list[Step], tracker, *, console=None, parallel: int = 1, cores: int = 1, watch: LaunchWatch | None = None
) -> Outcome:
    """Run the steps, up to `parallel` at once, each as soon as what it needs has succeeded (plan
    order breaks ties), with a progress display; resume past `.done` steps. A failed step skips
    only what depends on it. Each running step gets `cores // parallel` OpenMP threads. `watch`
    hears of every step process group and every run closed, to clean up should this process die."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from valley.cli_kit import console as make_console

    console = console or make_console()
    outcome = Outcome()
    began_at = time.monotonic()
    began: dict[str, float] = {}  # step key -> when it started
    threads = max(1, cores // parallel)
    planned = {s.key for s in steps}
    succeeded: set[str] = set()  # done or reused
    failure: dict[str, str] = {}  # step key -> why it (or what it needed) failed
    last_step_of = {s.run_name: s.key for s in steps if s.stage == "eval"}
    started: set[str] = set()
    ended_runs: set[str] = set()  # runs whose MLflow state this launch has closed
    pending = list(steps)
    running: dict = {}  # future -> (step, its progress row)
    # one row for the whole launch (steps ended of all), one per running step (its own clock)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[ended]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress, ThreadPoolExecutor(parallel) as pool:
        overall = progress.add_task("steps", total=len(steps), ended=f"0/{len(steps)}")

        def ended() -> None:
            count = len(outcome.done) + len(outcome.reused) + len(outcome.failed) + len(outcome.skipped)
            progress.update(overall, completed=count, ended=f"{count}/{len(steps)}")

        def close_run(run_name: str, run_id: str, status: str, note: str | None = None) -> None:
            tracker.set_status(run_id, status, note=note)
            ended_runs.add(run_name)
            if watch is not None:
                watch.closed(run_id)

        def settle(step: Step) -> bool:
            """Skip, reuse or start the step if it can be; False while it waits."""
            blocker = next((need for need in step.needs if need in failure), None)
            if blocker is not None:
                failure[step.key] = failure[blocker]
                outcome.skipped.append(step.key)
                console.print(f"[yellow]- skipped[/] {step.title} (needs {blocker}, which failed)")
                if step.run_id and step.token:
                    close_run(step.run_name, step.run_id, FAILED, failure[blocker])
                ended()
            elif any(need in planned and need not in succeeded for need in step.needs):
                return False
            elif is_done(done_marker(step.out_dir), step.token):
                outcome.reused.append(step.key)
                succeeded.add(step.key)
                console.print(f"[dim]= reused[/] {step.title} ({step.out_dir})")
                if step.key == last_step_of.get(step.run_name):
                    close_run(step.run_name, step.run_id, FINISHED)
                ended()
            elif len(running) >= parallel:
                return False
            else:
                if step.token and step.run_name not in started:
                    started.add(step.run_name)
                    tracker.set_status(step.run_id, RUNNING)
                row = progress.add_task(f"  {step.title}", total=None, ended="")
                began[step.key] = time.monotonic() - began_at
                running[pool.submit(run_step, step, tracker.uri, threads, watch)] = (step, row)
            return True

        def finish(step: Step, seconds: float) -> None:
            if seconds < 0:
                failure[step.key] = f"{step.stage} failed; log: {step.log}"
                outcome.failed[step.key] = step.log
                console.print(f"[red]x failed[/] {step.title}: log {step.log}\n{tail(step.log)}")
                if step.token:
                    close_run(step.run_name, step.run_id, FAILED, failure[step.key])
            else:
                outcome.seconds[step.key] = seconds
                outcome.intervals[step.key] = (began[step.key], time.monotonic() - began_at)
                mark_done(done_marker(step.out_dir), step.token)
                outcome.done.append(step.key)
                succeeded.add(step.key)
                console.print(f"[green]✓[/] {step.title} ({seconds:.1f} s)")
                if step.key == last_step_of.get(step.run_name):
                    close_run(step.run_name, step.run_id, FINISHED)
                elif step.token:  # the workload ended its attached run; the run goes on
                    tracker.set_status(step.run_id, RUNNING)
            ended()

        def run_loop() -> None:
            nonlocal pending
            while pending or running:
                # plan order is a topological order: one pass settles whatever a reuse or skip unblocks
                pending = [step for step in pending if not settle(step)]
                if not running:  # plan order is topological, so nothing waits on a step that never ran
                    assert not pending, [step.key for step in pending]
                    break
                returned, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in returned:
                    step, row = running.pop(future)
                    progress.remove_task(row)
                    finish(step, future.result())

        try:
            run_loop()
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM: end every step's process tree first (a workload left running would
            # record its attached run FINISHED on its own), then close every run of this launch still open
            stop_steps()
            # started or still waiting: none of them runs on without this launch
            run_ids = {s.run_name: s.run_id for s in steps if s.run_id and s.token}
            for name in sorted(set(run_ids) - ended_runs):
                close_run(name, run_ids[name], KILLED, INTERRUPTED_NOTE)
            raise
        progress.update(overall, description="done")
    return outcome


INTERRUPTED_NOTE = "local launch interrupted; rerun the same `valleyctl launch` to resume past finished steps"
#: the process of each running step (its own process group: the step's children go with it)
_step_processes: set[subprocess.Popen] = set()
_step_processes_lock = threading.Lock()


def stop_steps() -> None:
    """SIGTERM every running step's process group, SIGKILL what is left after a grace period."""
    with _step_processes_lock:
        groups = [process.pid for process in _step_processes]
    stop_groups(groups)


def run_step(step: Step, tracking_uri: str, threads: int = 1, watch: LaunchWatch | None = None) -> float:
    """Run one command with its output in the step's log; seconds taken, or -1 on failure."""
    step.log.parent.mkdir(parents=True, exist_ok=True)
    step.out_dir.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with step.log.open("w") as log:
        log.write(f"$ {' '.join(step.command)}\n")
        log.flush()
        # its own process group, so that an interrupted launch can end the step with all it started
        process = subprocess.Popen(
            list(step.command),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=step_env(step, tracking_uri, threads),
            process_group=0,
        )
        with _step_processes_lock:
            _step_processes.add(process)
        if watch is not None:
            watch.group_started(process.pid)
        try:
            code = process.wait()
        finally:
            with _step_processes_lock:
                _step_processes.discard(process)
            if watch is not None:
                watch.group_ended(process.pid)
    return time.perf_counter() - start if code == 0 else -1.0
