"""`valleyctl compare`: a study's runs read back from MLflow, next to the paper's numbers.

- Table 1: completion and think-tag rates of the RQ1 runs by size and student (plus our pass@1);
- Table 2: LCB pass@1 of the RQ2/RQ3 runs from both starting points (the instruct model and
  the 30K checkpoint);
- paired bootstraps over problems for each RQ2/RQ3 contrast (correct vs incorrect, easy vs
  hard) and for each student's largest RQ1 run against its untrained baseline, from the
  per-problem artifacts `valley eval` logs;
- the valley plot (pass@1 against data size on a log axis, both students, baselines as lines),
  saved as PNG and logged to the study's parent run;
- beyond the paper: a log-linear fit of pass@1 on the sizes after the valley's bottom, and the
  data size it predicts for a target score; refused (one line why) when those scores are all
  equal, e.g. all zero, since a line through them measures nothing.

Runs evaluated under different eval specs are never put side by side (one line names the field).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from valley.errors import ValleyError
from valley.files import write_atomic
from valley.spec import format_size, parse_size
from valley.vocabulary import BASE_TAG, EVAL_SPEC_TAG, LABEL_TAG, MODEL_TAG, RQ_TAG, SIZE_TAG, SUBSET_TAG

#: Table 1 of the paper: (completion rate, think-tag rate) by (student preset, training size)
PAPER_TABLE1 = {
    ("qwen", 1000): (0.1842, 0.1406),
    ("qwen", 10000): (0.3509, 0.3496),
    ("qwen", 30000): (0.5802, 0.5677),
    ("llama", 1000): (0.4649, 0.0777),
    ("llama", 10000): (0.3459, 0.3496),
    ("llama", 30000): (0.7080, 0.7068),
}
#: Table 2 of the paper: LCB pass@1 by row, from the instruct model | from Qwen2.5-30K
PAPER_TABLE2 = {
    "baseline": (0.126, 0.264),
    "correct-6k": (0.185, 0.347),
    "incorrect-6k": (0.182, 0.350),
    "hard-4k": (0.137, 0.296),
    "easy-4k": (0.179, 0.352),
}
TABLE2_ROWS = ("baseline", "correct-6k", "incorrect-6k", "hard-4k", "easy-4k")
#: the paper's RQ2/RQ3 questions: is a above b (easy > hard), or are they equal (correct = incorrect)?
CONTRASTS = (("correct", "incorrect"), ("easy", "hard"))
PER_PROBLEM_ARTIFACT = "eval/per_problem.jsonl"


@dataclass(frozen=True)
class EvaluatedRun:
    """One study run that has eval metrics, as MLflow holds it."""

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

    @property
    def cell(self) -> str:
        return "baseline" if self.rq == "baseline" else f"{self.subset}-{format_size(self.size)}"


# ------------------------------------------------------------------------------ reading


def load_runs(tracker, study: str) -> tuple[list[EvaluatedRun], list[str]]:
    """Evaluated runs of the study (latest per label) and the labels still without eval metrics."""
    from manager.tracking import experiment_name

    if tracker.client.get_experiment_by_name(experiment_name(study)) is None:
        raise ValleyError(
            f"study: no MLflow experiment {experiment_name(study)} in {tracker.uri}; "
            f"launch it first (valleyctl launch --study {study}) or pass --tracking-uri"
        )
    runs, pending, seen = [], [], set()
    for run in reversed(tracker.study_runs(study)):  # newest first: a relaunched label wins
        tags, metrics = run.data.tags, run.data.metrics
        label = tags.get(LABEL_TAG)
        if label is None or label in seen:
            continue
        seen.add(label)
        if "pass_at_1" not in metrics or EVAL_SPEC_TAG not in tags:
            pending.append(label)
            continue
        base = tags.get(BASE_TAG, "none")
        runs.append(
            EvaluatedRun(
                run_id=run.info.run_id,
                label=label,
                rq=tags.get(RQ_TAG, "baseline"),
                model=tags.get(MODEL_TAG, label.split("-")[0]),
                size=0 if tags.get(SIZE_TAG, "0") == "0" else parse_size(tags[SIZE_TAG]),
                subset=tags.get(SUBSET_TAG, "none"),
                base=None if base == "none" else base,
                metrics=dict(metrics),
                eval_spec=json.loads(tags[EVAL_SPEC_TAG]),
            )
        )
    return sorted(runs, key=lambda r: (r.model, r.base or "", r.rq, r.size, r.subset)), sorted(pending)


#: eval fields that say where an eval ran, not what it measured (per-request seeds do not
#: depend on the replica layout), so runs may differ in them
EXECUTION_ONLY = frozenset({"tensor_parallel_size", "data_parallel_size", "isolation"})


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
    # MLflow draws a progress bar per download unless told not to; one per run buries compare's tables
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(client.download_artifacts(run.run_id, PER_PROBLEM_ARTIFACT, tmp))
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row["question_id"]: row["pass_at_1"] for row in rows if row.get("pass_at_1") is not None}


# ------------------------------------------------------------------------------ tables


def _metric(run: EvaluatedRun | None, name: str) -> float | None:
    return None if run is None else run.metrics.get(name)


def table1(runs: list[EvaluatedRun]) -> list[dict]:
    """RQ1 rows (random subsets from the instruct model) and baselines, by student and size."""
    rows = []
    for run in runs:
        if run.base is not None or run.rq not in ("rq1", "baseline"):
            continue
        paper = PAPER_TABLE1.get((run.model, run.size), (None, None))
        rows.append(
            {
                "student": run.model,
                "size": run.size,
                "label": run.label,
                "completion_rate": _metric(run, "completion_rate"),
                "paper_completion_rate": paper[0],
                "think_tag_rate": _metric(run, "think_tag_rate"),
                "paper_think_tag_rate": paper[1],
                "pass_at_1": _metric(run, "pass_at_1"),
            }
        )
    return rows


def _starting_points(runs: list[EvaluatedRun]) -> list[tuple[str, str | None]]:
    """(student, base label) pairs that have RQ2/RQ3 runs."""
    return sorted({(r.model, r.base) for r in runs if r.rq in ("rq2", "rq3")}, key=lambda p: (p[0], p[1] or ""))


def _start_run(runs: list[EvaluatedRun], model: str, base: str | None) -> EvaluatedRun | None:
    """The row 'baseline' of a starting point: the untrained student, or the base checkpoint's own run."""
    for run in runs:
        if (base is None and run.model == model and run.rq == "baseline") or (base is not None and run.label == base):
            return run
    return None


def table2(runs: list[EvaluatedRun]) -> list[dict]:
    """pass@1 of each RQ2/RQ3 cell by starting point, with CIs and the paper's value."""
    rows = []
    for model, base in _starting_points(runs):
        cells = {r.cell: r for r in runs if r.model == model and r.base == base and r.rq in ("rq2", "rq3")}
        cells["baseline"] = _start_run(runs, model, base)
        # the paper's rows; a study with other sizes (the mini study) lists its own cells in that order
        own = [
            c for kind in ("correct", "incorrect", "hard", "easy") for c in sorted(cells) if c.startswith(f"{kind}-")
        ]
        for row in TABLE2_ROWS if set(own) & set(TABLE2_ROWS) or not own else ("baseline", *own):
            run = cells.get(row)
            paper = PAPER_TABLE2.get(row, (None, None)) if model == "qwen" else (None, None)
            rows.append(
                {
                    "student": model,
                    "start": base or "instruct",
                    "row": row,
                    "label": run.label if run else None,
                    "pass_at_1": _metric(run, "pass_at_1"),
                    "ci_low": _metric(run, "pass_at_1_ci_low"),
                    "ci_high": _metric(run, "pass_at_1_ci_high"),
                    "paper_pass_at_1": paper[1] if base else paper[0],
                }
            )
    return rows


def contrasts(runs: list[EvaluatedRun], scores) -> list[dict]:
    """Paired bootstrap over problems for correct vs incorrect and easy vs hard at each starting point."""
    from valley.eval.metrics import paired_bootstrap

    results = []
    for model, base in _starting_points(runs):
        group = [r for r in runs if r.model == model and r.base == base]
        for first, second in CONTRASTS:
            for a in (r for r in group if r.subset == first):
                b = next((r for r in group if r.subset == second and r.size == a.size), None)
                if b is None:
                    continue
                contrast = paired_bootstrap(
                    scores(a), scores(b), names=(a.label, b.label), seed=a.eval_spec.get("seed", 0)
                )
                results.append({"student": model, "start": base or "instruct", **contrast.as_dict()})
    return results


def size_contrasts(runs: list[EvaluatedRun], scores) -> list[dict]:
    """Paired bootstrap over problems: each student's largest RQ1 run against its untrained baseline."""
    from valley.eval.metrics import paired_bootstrap

    results = []
    for model in sorted({r.model for r in runs}):
        trained = [r for r in runs if r.model == model and r.rq == "rq1" and r.base is None]
        baseline = _start_run(runs, model, None)
        if not trained or baseline is None:
            continue
        largest = max(trained, key=lambda r: r.size)
        contrast = paired_bootstrap(
            scores(largest),
            scores(baseline),
            names=(largest.label, baseline.label),
            seed=largest.eval_spec.get("seed", 0),
        )
        results.append({"student": model, "start": "instruct", **contrast.as_dict()})
    return results


# --------------------------------------------------------------------------- the valley


def valley_fit(runs: list[EvaluatedRun], target: float | None) -> list[dict]:
    """Per student: least-squares pass@1 = a + b ln(N) over the RQ1 sizes from the valley's bottom on."""
    fits = []
    for model in sorted({r.model for r in runs}):
        points = sorted(
            (r.size, r.metrics["pass_at_1"]) for r in runs if r.model == model and r.rq == "rq1" and r.base is None
        )
        if not points:
            continue
        bottom = min(range(len(points)), key=lambda i: points[i][1])
        after = points[bottom:]
        fit = {
            "student": model,
            "sizes": [s for s, _ in after],
            "bottom_size": points[bottom][0],
            "intercept": None,
            "slope_per_ln_size": None,
            "target": target,
            "predicted_size": None,
            "refused": None,
        }
        if len({s for s, _ in after}) >= 2 and len({p for _, p in after}) == 1:
            fit["refused"] = (
                f"pass@1 is {after[0][1]:.4f} at every size from the bottom on "
                f"({', '.join(format_size(s) for s, _ in after)}); a line through constant scores measures nothing"
            )
        elif len({s for s, _ in after}) < 2:
            fit["refused"] = f"fewer than two sizes after the bottom ({format_size(points[bottom][0])}); no trend"
        else:
            import numpy as np

            slope, intercept = np.polyfit([math.log(s) for s, _ in after], [p for _, p in after], 1)
            fit |= {"intercept": float(intercept), "slope_per_ln_size": float(slope)}
            if target is not None and slope > 0:
                fit["predicted_size"] = float(math.exp((target - intercept) / slope))
        fits.append(fit)
    return fits


#: the plot's panels: the valley itself, then Table 1's two rates, which move before the score does
PLOT_PANELS = (
    ("pass_at_1", "LiveCodeBench pass@1"),
    ("completion_rate", "completion rate"),
    ("think_tag_rate", "think-tag rate"),
)


def valley_plot(runs: list[EvaluatedRun], study: str, path: Path) -> Path:
    """pass@1 (95% CI), completion and think-tag rates against data size, log x; each
    student's baseline a dashed line."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(1, len(PLOT_PANELS), figsize=(15, 4.5))
    for axes, (metric, title) in zip(panels, PLOT_PANELS, strict=True):
        for index, model in enumerate(sorted({r.model for r in runs})):
            color = f"C{index}"
            points = sorted(
                (r for r in runs if r.model == model and r.rq == "rq1" and r.base is None), key=lambda r: r.size
            )
            if points:
                sizes = [r.size for r in points]
                values = [r.metrics.get(metric, float("nan")) for r in points]
                errors = None
                if metric == "pass_at_1":
                    errors = [
                        [v - r.metrics.get("pass_at_1_ci_low", v) for v, r in zip(values, points, strict=True)],
                        [r.metrics.get("pass_at_1_ci_high", v) - v for v, r in zip(values, points, strict=True)],
                    ]
                axes.errorbar(
                    sizes, values, yerr=errors, marker="o", color=color, capsize=3, label=f"{model} (trained)"
                )
            baseline = _start_run(runs, model, None)
            if baseline is not None and metric in baseline.metrics:
                axes.axhline(
                    baseline.metrics[metric], color=color, linestyle="--", linewidth=1, label=f"{model} baseline"
                )
        axes.set_xscale("log")
        axes.set_ylim(bottom=0)  # rates: a score of 0 sits on the floor, not mid-axis
        axes.set_xlabel("SFT examples (log scale)")
        axes.set_ylabel(title)
        axes.grid(True, which="both", alpha=0.3)
    panels[0].legend(fontsize=8)
    figure.suptitle(f"The valley: study {study}")
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110)
    plt.close(figure)
    return write_atomic(path, image.getvalue())


# ------------------------------------------------------------------------------- driver


def compare_study(
    study: str, tracking_uri: str | None, out_dir: Path, *, target: float | None = None, allow_mixed_eval: bool = False
) -> dict:
    """Everything `valleyctl compare` prints, as one dict; writes the plot and the JSON and logs
    both to the study's parent run (tag valley.kind=study; created if the store lacks it)."""
    from manager.tracking import Tracker

    tracker = Tracker(tracking_uri)
    runs, pending = load_runs(tracker, study)
    if not allow_mixed_eval:
        check_same_eval(runs)
    cache: dict[str, dict[str, float]] = {}

    def scores(run: EvaluatedRun) -> dict[str, float]:
        if run.run_id not in cache:
            cache[run.run_id] = per_problem_scores(tracker.client, run)
        return cache[run.run_id]

    result = {
        "study": study,
        "tracking_uri": tracker.uri,
        "runs": [r.label for r in runs],
        "pending": pending,
        "eval_spec": runs[0].eval_spec if runs else None,
        "table1": table1(runs),
        "table2": table2(runs),
        "contrasts": size_contrasts(runs, scores) + contrasts(runs, scores),
        "valley_fit": valley_fit(runs, target),
        "plot": None,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parent = tracker.study_run_id(study)
    if runs:
        plot = valley_plot(runs, study, out_dir / f"valley-{study}.png")
        result["plot"] = str(plot)
        tracker.client.log_artifact(parent, str(plot), artifact_path="compare")
    summary = out_dir / f"compare-{study}.json"
    summary.write_text(json.dumps(result, indent=2) + "\n")
    tracker.client.log_artifact(parent, str(summary), artifact_path="compare")
    return result


# ------------------------------------------------------------------------------ output


def render(result: dict, console) -> None:
    from rich.table import Table

    def num(value, digits=4):
        return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"

    if result["pending"]:
        console.print(f"not yet evaluated: {', '.join(result['pending'])}")
    one = Table(title=f"Table 1 — completion and think-tag rates ({result['study']}; paper beside ours)")
    for column in ("student", "size", "completion", "paper", "think-tag", "paper ", "pass@1"):
        one.add_column(column, justify="left" if column == "student" else "right")
    for r in result["table1"]:
        one.add_row(
            r["student"],
            format_size(r["size"]) if r["size"] else "baseline",
            num(r["completion_rate"]),
            num(r["paper_completion_rate"]),
            num(r["think_tag_rate"]),
            num(r["paper_think_tag_rate"]),
            num(r["pass_at_1"]),
        )
    console.print(one)
    if result["table2"]:
        two = Table(title="Table 2 — LCB pass@1 of the RQ2/RQ3 runs (95% CI; paper beside ours)")
        for column in ("student", "start", "row", "pass@1", "95% CI", "paper"):
            two.add_column(column, justify="right" if column in ("pass@1", "paper") else "left")
        for r in result["table2"]:
            ci = "—" if r["ci_low"] is None else f"{num(r['ci_low'], 3)}–{num(r['ci_high'], 3)}"
            two.add_row(r["student"], r["start"], r["row"], num(r["pass_at_1"]), ci, num(r["paper_pass_at_1"], 3))
        console.print(two)
    else:
        console.print("Table 2: no RQ2/RQ3 runs in this study")
    for c in result["contrasts"]:
        console.print(
            f"{c['a']} − {c['b']} ({c['start']}): {c['difference']:+.4f} "
            f"[95% CI {c['ci_low']:+.4f}, {c['ci_high']:+.4f}] over {c['problems']} problems; "
            f"P(not above) = {c['p_not_above']:.3f}"
        )
    for fit in result["valley_fit"]:
        if fit["refused"]:
            console.print(f"valley fit {fit['student']}: none, {fit['refused']}")
            continue
        line = (
            f"valley fit {fit['student']}: pass@1 ≈ {fit['intercept']:.4f} + {fit['slope_per_ln_size']:.4f}·ln N "
            f"over N = {', '.join(format_size(s) for s in fit['sizes'])}"
        )
        if fit["target"] is not None:
            predicted = fit["predicted_size"]
            line += (
                f"; pass@1 {fit['target']} needs N ≈ {predicted:,.0f} (extrapolated)"
                if predicted
                else f"; no rise after the valley, so no size reaches {fit['target']}"
            )
        console.print(line)
    if result["plot"]:
        console.print(f"valley plot: {result['plot']} (also logged to the study run)")
