"""One description of a study's stages: the `valley` command each runs, the paths it reads and
writes, and what it waits for. Both backends render from it: the local backend runs each stage
as a subprocess under `.valley/`, the Kubernetes backend renders each as a Job whose volumes are
mounted at `/models`, `/datasets` and `/checkpoints` (manager/render).

    stage            command                  writes                                  once per
    fetch:<preset>   valley model fetch       <models>/<preset>/                      student
    data:<subset>    valley data build        <datasets>/<RunSpec.subset_dir_name>/   subset key (+ student, budget)
    lcb:<window>     valley data lcb          <datasets>/lcb/<source>-<release>-<window>.jsonl   eval window
    train:<run>      valley train             <checkpoints>/<run.name>/final/
    eval:<run>       valley eval              <checkpoints>/<run.name>/eval/

Shared stages (fetch, data, lcb) serve every run that needs them, so concurrent runs never race
on one directory; on a cluster they are Jobs named by content (`valley-fetch-…`, `valley-data-…`,
`valley-lcb-…`), created once whichever run comes first. Train and eval are the run's own.

Locally, under `.valley/` (models/, data/ as <datasets>, checkpoints/), `specs/<run.name>.json`
holds the RunSpec each command reads and `logs/<run.name>/<stage>.log` its output. A `.done`
marker (written last, atomically) makes a rerun skip a finished step; for train and eval it holds
the MLflow run id, so a step whose run was recreated runs again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from valley.files import write_atomic
from valley.spec import RunSpec

DONE = ".done"


@dataclass(frozen=True)
class Paths:
    """Where stages read and write, below three roots (volumes on a cluster, dirs locally)."""

    models: str
    datasets: str
    checkpoints: str

    def model_dir(self, run: RunSpec) -> str:
        return f"{self.models}/{run.model.preset}"

    def data_dir(self, run: RunSpec) -> str:
        assert run.subset_dir_name is not None, "baselines build no subset"
        return f"{self.datasets}/{run.subset_dir_name}"

    def lcb_file(self, run: RunSpec) -> str:
        """The run's LiveCodeBench problems, staged where eval reads them (eval has no Hub egress)."""
        e = run.eval
        return f"{self.datasets}/lcb/{e.source}-{e.lcb_release}-{e.date_start}-{e.date_end}.jsonl"

    def checkpoint_dir(self, run: RunSpec) -> str:
        return f"{self.checkpoints}/{run.name}"

    def final_checkpoint(self, run: RunSpec) -> str:
        return f"{self.checkpoints}/{run.checkpoint_dir}"

    def eval_model(self, run: RunSpec) -> str:
        """What eval serves: the run's final checkpoint, or the untrained student."""
        return self.model_dir(run) if run.is_baseline else self.final_checkpoint(run)

    def eval_dir(self, run: RunSpec) -> str:
        return f"{self.checkpoint_dir(run)}/eval"


#: the volumes of the cluster kit (k8s/base/pvcs.yaml), as every pod mounts them
POD_PATHS = Paths(models="/models", datasets="/datasets", checkpoints="/checkpoints")


@dataclass(frozen=True)
class Stage:
    """One `valley` command of a study."""

    key: str
    #: fetch | data | lcb | train | eval
    kind: str
    #: the run whose spec the command reads and whose MLflow run it logs into (shared stages: the
    #: first run that needs them; the cluster gives shared Jobs a spec of their own, `shared_spec`)
    run: RunSpec
    #: the arguments after `valley`
    args: tuple[str, ...]
    out: str
    #: keys of the stages that must have succeeded first
    needs: tuple[str, ...] = ()

    @property
    def shared(self) -> bool:
        return self.kind in SHARED


SHARED = ("fetch", "data", "lcb")


def fetch_key(run: RunSpec) -> str:
    return f"fetch:{run.model.preset}"


def data_key(run: RunSpec) -> str:
    return f"data:{run.subset_dir_name}"


def lcb_key(run: RunSpec) -> str:
    return f"lcb:{POD_PATHS.lcb_file(run).rsplit('/', 1)[1].removesuffix('.jsonl')}"


def run_stages(run: RunSpec, paths: Paths, spec: str) -> list[Stage]:
    """The stages one run needs, in order (`spec`: where its commands read its RunSpec)."""
    model = paths.model_dir(run)
    stages = [
        Stage(fetch_key(run), "fetch", run, ("model", "fetch", "--preset", run.model.preset, "--out", model), model),
        Stage(
            lcb_key(run),
            "lcb",
            run,
            ("data", "lcb", "--run-spec", spec, "--out", paths.lcb_file(run)),
            paths.lcb_file(run),
        ),
    ]
    trained = fetch_key(run)
    if run.data is not None and run.train is not None:
        data = paths.data_dir(run)
        stages.append(
            Stage(
                data_key(run),
                "data",
                run,
                ("data", "build", "--run-spec", spec, "--tokenizer", model, "--out", data),
                data,
                (fetch_key(run),),
            )
        )
        args = ("train", "--run-spec", spec, "--data", data, "--model", model, "--out", paths.checkpoint_dir(run))
        needs = (fetch_key(run), data_key(run))
        if run.base is not None:
            args += ("--base-checkpoint", paths.final_checkpoint(run.base))
            needs += (f"train:{run.base.name}",)
        trained = f"train:{run.name}"
        stages.append(Stage(trained, "train", run, args, paths.checkpoint_dir(run), needs))
    stages.append(
        Stage(
            f"eval:{run.name}",
            "eval",
            run,
            (
                "eval",
                "--run-spec",
                spec,
                "--model",
                paths.eval_model(run),
                "--out",
                paths.eval_dir(run),
                "--lcb-path",
                paths.lcb_file(run),
            ),
            paths.eval_dir(run),
            (trained, lcb_key(run)),
        )
    )
    return stages


def plan_stages(runs: list[RunSpec], paths: Paths, spec: Callable[[RunSpec], str]) -> list[Stage]:
    """Every stage of `runs` (bases before the runs continued from them), each shared stage once,
    in an order that respects `needs`."""
    from manager.study import ordered

    stages: dict[str, Stage] = {}
    for run in ordered(runs):
        for stage in run_stages(run, paths, spec(run)):
            stages.setdefault(stage.key, stage)
    return list(stages.values())


def shared_spec(stage: Stage) -> RunSpec:
    """The spec a shared stage reads on a cluster: only what its output depends on, so every run
    that needs it renders the same Job. A subset: data, student (tokenizer), token budget. The
    LiveCodeBench window: the eval source, release and dates (`valley data lcb` reads nothing
    else; the student is a fixed placeholder)."""
    from valley.spec import EvalSpec, TrainSpec

    run = stage.run
    if stage.kind == "data":
        assert run.data is not None and run.train is not None
        return RunSpec(model=run.model, data=run.data, train=TrainSpec(max_seq_len=run.train.max_seq_len))
    assert stage.kind == "lcb", stage.kind
    e = run.eval
    return RunSpec(
        model="qwen",
        eval=EvalSpec(source=e.source, lcb_release=e.lcb_release, date_start=e.date_start, date_end=e.date_end),
    )


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# --------------------------------------------------------------------- the local layout


@dataclass(frozen=True)
class Layout:
    """The local backend's `.valley/` directory."""

    root: Path

    @classmethod
    def at(cls, base: Path | str = ".") -> "Layout":
        return cls(Path(base).resolve() / ".valley")

    @property
    def paths(self) -> Paths:
        return Paths(
            models=str(self.root / "models"),
            datasets=str(self.root / "data"),
            checkpoints=str(self.root / "checkpoints"),
        )

    def model_dir(self, run: RunSpec) -> Path:
        return Path(self.paths.model_dir(run))

    def data_dir(self, run: RunSpec) -> Path:
        return Path(self.paths.data_dir(run))

    def checkpoint_dir(self, run: RunSpec) -> Path:
        return Path(self.paths.checkpoint_dir(run))

    def final_checkpoint(self, run: RunSpec) -> Path:
        return Path(self.paths.final_checkpoint(run))

    def eval_model(self, run: RunSpec) -> Path:
        return Path(self.paths.eval_model(run))

    def eval_dir(self, run: RunSpec) -> Path:
        return Path(self.paths.eval_dir(run))

    def spec_file(self, run: RunSpec) -> Path:
        return self.root / "specs" / f"{run.name}.json"

    def log_file(self, run: RunSpec, stage: str) -> Path:
        return self.root / "logs" / run.name / f"{stage}.log"

    def write_spec(self, run: RunSpec) -> Path:
        path = self.spec_file(run)
        write_atomic(path, run.to_json())
        return path


def done_marker(out: Path) -> Path:
    """`<dir>/.done` for a stage that writes a directory, `<file>.done` beside a single file."""
    return out.with_name(out.name + DONE) if out.suffix == ".jsonl" else out / DONE


def is_done(marker: Path, token: str = "") -> bool:
    return marker.is_file() and marker.read_text() == token


def mark_done(marker: Path, token: str = "") -> None:
    write_atomic(marker, token)
