"""The local backend's steps: a study's runs as subprocesses of the same `valley` commands the
Jobs run, on this machine, recorded into the same kind of MLflow runs.

Order: `valley model fetch` once per preset -> `valley data build` once per subset ->
`valley train` (base runs before the runs continued from them) -> `valley eval`. Each step
writes a `.done` marker when it succeeds, so rerunning the same launch resumes. A failed
step marks its MLflow run FAILED with the log path and skips only what depends on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from manager.layout import Layout, is_done, mark_done
from manager.study import ordered
from manager.tracking import FAILED, FINISHED, RUNNING
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
    """The steps, in execution order, for `runs` (pure: no process is started)."""
    steps: dict[str, Step] = {}
    runs = ordered(runs)
    for run in runs:
        key = f"fetch:{run.model.preset}"
        if key not in steps:
            out = layout.model_dir(run)
            steps[key] = Step(key, "fetch", f"fetch {run.model.preset}",
                              (*VALLEY, "model", "fetch", "--preset", run.model.preset, "--out", str(out)),
                              out, layout.root / "logs" / f"fetch-{run.model.preset}.log")
    for run in runs:
        run_id = run_ids[run.name]
        spec = str(layout.spec_file(run))
        fetch = f"fetch:{run.model.preset}"
        last = fetch
        if run.data is not None and run.train is not None:
            out = layout.data_dir(run)
            data_key = f"data:{out.name}"
            if data_key not in steps:
                steps[data_key] = Step(data_key, "data", f"data {out.name}",
                                       (*VALLEY, "data", "build", "--run-spec", spec,
                                        "--tokenizer", str(layout.model_dir(run)), "--out", str(out)),
                                       out, layout.log_file(run, "data"), run.name, run_id, (fetch,))
            command = [*VALLEY, "train", "--run-spec", spec, "--data", str(out),
                       "--model", str(layout.model_dir(run)), "--out", str(layout.checkpoint_dir(run))]
            needs = [data_key]
            if run.base is not None:
                command += ["--base-checkpoint", str(layout.final_checkpoint(run.base))]
                needs.append(f"train:{run.base.name}")
            last = f"train:{run.name}"
            steps[last] = Step(last, "train", f"train {run.label}", tuple(command), layout.checkpoint_dir(run),
                               layout.log_file(run, "train"), run.name, run_id, tuple(needs), run_id)
        key = f"eval:{run.name}"
        steps[key] = Step(key, "eval", f"eval {run.label}",
                          (*VALLEY, "eval", "--run-spec", spec, "--model", str(layout.eval_model(run)),
                           "--out", str(layout.eval_dir(run))),
                          layout.eval_dir(run), layout.log_file(run, "eval"), run.name, run_id, (last,), run_id)
    return list(steps.values())


def step_env(step: Step, tracking_uri: str) -> dict[str, str]:
    """The workload's environment: this step's MLflow run (and never an inherited one)."""
    env = {k: v for k, v in os.environ.items() if k not in {"MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"}}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
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

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def execute(steps: list[Step], tracker, *, console=None) -> Outcome:
    """Run the steps in order with a progress display; resume past `.done` steps."""
    from valley.cli_kit import console as make_console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = console or make_console()
    outcome = Outcome()
    failure: dict[str, str] = {}  # step key -> why it (or what it needed) failed
    last_step_of = {s.run_name: s.key for s in steps if s.stage == "eval"}
    started: set[str] = set()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        overall = progress.add_task("steps", total=len(steps))
        for step in steps:
            blocker = next((need for need in step.needs if need in failure), None)
            if blocker is not None:
                failure[step.key] = failure[blocker]
                outcome.skipped.append(step.key)
                console.print(f"[yellow]- skipped[/] {step.title} (needs {blocker}, which failed)")
                if step.run_id and step.token:
                    tracker.set_status(step.run_id, FAILED, note=failure[blocker])
            elif is_done(step.out_dir, step.token):
                outcome.reused.append(step.key)
                console.print(f"[dim]= reused[/] {step.title} ({step.out_dir})")
                if step.key == last_step_of.get(step.run_name):
                    tracker.set_status(step.run_id, FINISHED)
            else:
                progress.update(overall, description=step.title)
                if step.token and step.run_name not in started:
                    started.add(step.run_name)
                    tracker.set_status(step.run_id, RUNNING)
                seconds = run_step(step, tracker.uri)
                if seconds < 0:
                    failure[step.key] = f"{step.stage} failed; log: {step.log}"
                    outcome.failed[step.key] = step.log
                    console.print(f"[red]x failed[/] {step.title}: log {step.log}\n{tail(step.log)}")
                    if step.token:
                        tracker.set_status(step.run_id, FAILED, note=failure[step.key])
                else:
                    outcome.seconds[step.key] = seconds
                    mark_done(step.out_dir, step.token)
                    outcome.done.append(step.key)
                    console.print(f"[green]✓[/] {step.title} ({seconds:.1f} s)")
                    if step.key == last_step_of.get(step.run_name):
                        tracker.set_status(step.run_id, FINISHED)
                    elif step.token:  # the workload ended its attached run; the run goes on
                        tracker.set_status(step.run_id, RUNNING)
            progress.advance(overall)
        progress.update(overall, description="done")
    return outcome


def run_step(step: Step, tracking_uri: str) -> float:
    """Run one command with its output in the step's log; seconds taken, or -1 on failure."""
    step.log.parent.mkdir(parents=True, exist_ok=True)
    step.out_dir.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with step.log.open("w") as log:
        log.write(f"$ {' '.join(step.command)}\n")
        log.flush()
        code = subprocess.call(list(step.command), stdout=log, stderr=subprocess.STDOUT, env=step_env(step, tracking_uri))
    return time.perf_counter() - start if code == 0 else -1.0
