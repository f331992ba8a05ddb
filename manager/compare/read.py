"""Reading a study back from MLflow: each run's spec from the `spec/run.json` artifact every run
logs at launch (the spec the workloads ran, not a reconstruction from tags), its eval metrics,
and the per-problem scores the paired bootstraps need."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from valley.errors import ValleyError
from valley.spec import RunSpec, format_size
from valley.vocabulary import EVAL_SPEC_TAG

SPEC_ARTIFACT = "spec/run.json"
PER_PROBLEM_ARTIFACT = "eval/per_problem.jsonl"
#: eval fields that say where an eval ran, not what it measured (per-request seeds do not
#: depend on the replica layout), so runs may differ in them
EXECUTION_ONLY = frozenset({"tensor_parallel_size", "data_parallel_size", "isolation"})


@dataclass(frozen=True)
class EvaluatedRun:
    """One study run that has eval metrics, as MLflow holds it."""

    #: its eval run (`<label>/eval`), which holds the metrics and the per-problem artifact
    run_id: str
    label: str
    rq: str
    model: str
    size: int
    subset: str
    #: label of the run it continued from, or None (from the instruct model)
    base: str | None
    metrics: dict[str, float] = field(repr=False)
    eval_spec: dict = field(repr=False)

    @classmethod
    def from_spec(
        cls, run_id: str, spec: RunSpec, metrics: dict[str, float], eval_spec: dict | None = None
    ) -> "EvaluatedRun":
        """`eval_spec`: the eval spec the evaluation recorded it ran with (default: the run spec's)."""
        return cls(
            run_id=run_id,
            label=spec.label,
            rq=spec.rq,
            model=spec.model.preset,
            size=spec.data.size if spec.data else 0,
            subset=spec.data.subset if spec.data else "none",
            base=spec.base.label if spec.base else None,
            metrics=dict(metrics),
            eval_spec=eval_spec if eval_spec is not None else spec.eval.model_dump(mode="json"),
        )

    @property
    def cell(self) -> str:
        return "baseline" if self.rq == "baseline" else f"{self.subset}-{format_size(self.size)}"


def load_runs(tracker, study: str) -> tuple[list[EvaluatedRun], list[str]]:
    """Evaluated runs of the study (latest attempt per label) and the labels still without eval metrics."""
    from manager.tracking import experiment_name

    if tracker.client.get_experiment_by_name(experiment_name(study)) is None:
        raise ValleyError(
            f"study: no MLflow experiment {experiment_name(study)} in {tracker.uri}; "
            f"launch it first (valleyctl launch --study {study}) or pass --tracking-uri"
        )
    evaluations = tracker.evaluations(study)
    runs, pending, seen = [], [], set()
    for record in reversed(tracker.study_runs(study)):  # newest first: a relaunched label wins
        label = record.info.run_name
        if label in seen:
            continue
        seen.add(label)
        evaluation, metrics = evaluations.get(record.info.run_id, (None, {}))
        if "pass_at_1" not in metrics:
            pending.append(label)
            continue
        spec = read_spec(tracker.client, record.info.run_id, label)
        # what was measured is what the evaluation recorded, should it ever differ from the launch's spec
        measured = evaluation.data.tags.get(EVAL_SPEC_TAG)
        eval_spec = json.loads(measured) if measured else None
        runs.append(EvaluatedRun.from_spec(evaluation.info.run_id, spec, metrics, eval_spec))
    return sorted(runs, key=lambda r: (r.model, r.base or "", r.rq, r.size, r.subset)), sorted(pending)


def read_spec(client, run_id: str, label: str) -> RunSpec:
    """The RunSpec a run logged at launch; a run without one (or with a broken one) is named."""
    from pydantic import ValidationError

    try:
        text = artifact_text(client, run_id, SPEC_ARTIFACT)
    except OSError as error:
        raise ValleyError(
            f"{label}: run {run_id} has no readable {SPEC_ARTIFACT} ({error.strerror or error}); "
            "it was not recorded by valleyctl launch"
        ) from None
    try:
        return RunSpec.from_json(text)
    except (ValidationError, ValueError) as error:
        raise ValleyError(f"{label}: {SPEC_ARTIFACT} of run {run_id} is not a valid RunSpec: {error}") from None


def check_same_eval(runs: list[EvaluatedRun]) -> None:
    """Refuse to compare runs evaluated differently, naming the first field that differs."""
    if not runs:
        return
    first = runs[0]
    for run in runs[1:]:
        for key in sorted((set(first.eval_spec) | set(run.eval_spec)) - EXECUTION_ONLY):
            if first.eval_spec.get(key) != run.eval_spec.get(key):
                raise ValleyError(
                    f"eval.{key}: {first.label} was evaluated with {first.eval_spec.get(key)!r}, {run.label} with "
                    f"{run.eval_spec.get(key)!r}; re-evaluate with one eval spec or pass --allow-mixed-eval"
                )


def per_problem_scores(client, run: EvaluatedRun) -> dict[str, float]:
    """question_id -> pass@1 from the run's per-problem artifact."""
    lines = artifact_text(client, run.run_id, PER_PROBLEM_ARTIFACT).splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return {row["question_id"]: row["pass_at_1"] for row in rows if row.get("pass_at_1") is not None}


def artifact_text(client, run_id: str, path: str) -> str:
    """One artifact's text, fetched through a temporary directory."""
    # MLflow draws a progress bar per download unless told not to; one per run buries compare's tables
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_text()
