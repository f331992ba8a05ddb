"""Where the local executor keeps things, under `.valley/` in the working directory.

    models/<preset>/                 student weights + tokenizer (`valley model fetch`)
    data/<RunSpec.subset_dir_name>/  an SFT subset: data key, student (its tokenizer) and token budget
    checkpoints/<run.name>/final/    a run's final HF checkpoint
    eval/<run.name>/                 generations, verdicts
    specs/<run.name>.json            the RunSpec each command reads via --run-spec
    logs/<run.name>/<stage>.log      each command's output

A `.done` marker (written last, atomically) makes a rerun skip a finished step; for train
and eval it holds the MLflow run id, so a step whose run was recreated runs again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from valley.spec import RunSpec
from valley.files import write_atomic

DONE = ".done"


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def at(cls, base: Path | str = ".") -> "Layout":
        return cls(Path(base).resolve() / ".valley")

    def model_dir(self, run: RunSpec) -> Path:
        return self.root / "models" / run.model.preset

    def data_dir(self, run: RunSpec) -> Path:
        assert run.data is not None
        return self.root / "data" / run.subset_dir_name

    def checkpoint_dir(self, run: RunSpec) -> Path:
        return self.root / "checkpoints" / run.name

    def final_checkpoint(self, run: RunSpec) -> Path:
        return self.checkpoint_dir(run) / "final"

    def eval_model(self, run: RunSpec) -> Path:
        return self.model_dir(run) if run.is_baseline else self.final_checkpoint(run)

    def eval_dir(self, run: RunSpec) -> Path:
        return self.root / "eval" / run.name

    def spec_file(self, run: RunSpec) -> Path:
        return self.root / "specs" / f"{run.name}.json"

    def log_file(self, run: RunSpec, stage: str) -> Path:
        return self.root / "logs" / run.name / f"{stage}.log"

    def write_spec(self, run: RunSpec) -> Path:
        path = self.spec_file(run)
        write_atomic(path, run.to_json())
        return path


def is_done(directory: Path, token: str = "") -> bool:
    marker = directory / DONE
    return marker.is_file() and marker.read_text() == token


def mark_done(directory: Path, token: str = "") -> None:
    write_atomic(directory / DONE, token)
