"""What compare computes from the evaluated runs (pure: runs and scores in, typed rows out).

- Table 1: completion and think-tag rates of the RQ1 runs by size and student, beside the paper's
  (plus our pass@1 with its 95% CI);
- Table 2: LCB pass@1 of the RQ2/RQ3 runs from both starting points (the instruct model and the
  30K checkpoint), with CIs and the paper's values;
- paired bootstraps over problems for each RQ2/RQ3 contrast (correct vs incorrect, easy vs hard)
  and for each student's largest RQ1 run against its untrained baseline;
- beyond the paper: a log-linear fit of pass@1 on the sizes from the valley's bottom on, and the
  data size it predicts for a target score; refused (one line why) when those scores are all
  equal, e.g. all zero, since a line through them measures nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from manager.compare.read import EvaluatedRun
from valley.spec import format_size

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

Scores = Callable[[EvaluatedRun], dict[str, float]]


@dataclass(frozen=True)
class Table1Row:
    student: str
    #: 0 for the untrained baseline
    size: int
    label: str
    completion_rate: float | None
    paper_completion_rate: float | None
    think_tag_rate: float | None
    paper_think_tag_rate: float | None
    pass_at_1: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Table2Row:
    student: str
    #: `instruct`, or the label of the checkpoint the runs continued from
    start: str
    row: str
    label: str | None
    pass_at_1: float | None
    ci_low: float | None
    ci_high: float | None
    paper_pass_at_1: float | None
    completion_rate: float | None
    think_tag_rate: float | None


@dataclass(frozen=True)
class ContrastRow:
    """Paired bootstrap of per-problem pass@1, `a - b`, over the problems both runs share."""

    student: str
    start: str
    a: str
    b: str
    problems: int
    difference: float
    ci_low: float
    ci_high: float
    #: share of resamples where the difference is <= 0 (one-sided: is a really above b?)
    p_not_above: float


@dataclass(frozen=True)
class ValleyFit:
    """Least-squares pass@1 = intercept + slope·ln N over one student's RQ1 sizes from the bottom on."""

    student: str
    sizes: list[int]
    bottom_size: int
    intercept: float | None = None
    slope_per_ln_size: float | None = None
    target: float | None = None
    #: the size the fit reaches `target` at (extrapolated), when the slope is positive
    predicted_size: float | None = None
    #: why there is no fit (constant scores, fewer than two sizes)
    refused: str | None = None

    def at(self, size: float) -> float:
        assert self.intercept is not None and self.slope_per_ln_size is not None, self.refused
        return self.intercept + self.slope_per_ln_size * math.log(size)

    @property
    def equation(self) -> str:
        sign = "+" if self.slope_per_ln_size >= 0 else "−"
        return f"pass@1 ≈ {self.intercept:.3f} {sign} {abs(self.slope_per_ln_size):.3f}·ln N"


@dataclass(frozen=True)
class Comparison:
    """Everything `valleyctl compare` reports about a study."""

    study: str
    tracking_uri: str
    runs: list[str]
    pending: list[str]
    eval_spec: dict | None
    table1: list[Table1Row]
    table2: list[Table2Row]
    contrasts: list[ContrastRow]
    valley_fit: list[ValleyFit]
    #: the valley plot's path, None when no run is evaluated yet
    plot: str | None = None
    #: the MLflow runs the plot and summary were logged to (only where asked)
    logged_to: list[str] = field(default_factory=list)


def metric(run: EvaluatedRun | None, name: str) -> float | None:
    return None if run is None else run.metrics.get(name)


def trained_rq1(runs: list[EvaluatedRun], model: str) -> list[EvaluatedRun]:
    """A student's RQ1 runs (random subsets from the instruct model), smallest first."""
    return sorted((r for r in runs if r.model == model and r.rq == "rq1" and r.base is None), key=lambda r: r.size)


def start_run(runs: list[EvaluatedRun], model: str, base: str | None) -> EvaluatedRun | None:
    """The row 'baseline' of a starting point: the untrained student, or the base checkpoint's own run."""
    for run in runs:
        if (base is None and run.model == model and run.rq == "baseline") or (base is not None and run.label == base):
            return run
    return None


def table1(runs: list[EvaluatedRun]) -> list[Table1Row]:
    """RQ1 rows (random subsets from the instruct model) and baselines, by student and size."""
    rows = []
    for run in runs:
        if run.base is not None or run.rq not in ("rq1", "baseline"):
            continue
        paper = PAPER_TABLE1.get((run.model, run.size), (None, None))
        rows.append(
            Table1Row(
                student=run.model,
                size=run.size,
                label=run.label,
                completion_rate=metric(run, "completion_rate"),
                paper_completion_rate=paper[0],
                think_tag_rate=metric(run, "think_tag_rate"),
                paper_think_tag_rate=paper[1],
                pass_at_1=metric(run, "pass_at_1"),
                ci_low=metric(run, "pass_at_1_ci_low"),
                ci_high=metric(run, "pass_at_1_ci_high"),
            )
        )
    return rows


def _starting_points(runs: list[EvaluatedRun]) -> list[tuple[str, str | None]]:
    """(student, base label) pairs that have RQ2/RQ3 runs."""
    return sorted({(r.model, r.base) for r in runs if r.rq in ("rq2", "rq3")}, key=lambda p: (p[0], p[1] or ""))


def table2(runs: list[EvaluatedRun]) -> list[Table2Row]:
    """pass@1 of each RQ2/RQ3 cell by starting point, with CIs and the paper's value."""
    rows = []
    for model, base in _starting_points(runs):
        cells = {r.cell: r for r in runs if r.model == model and r.base == base and r.rq in ("rq2", "rq3")}
        cells["baseline"] = start_run(runs, model, base)
        # the paper's rows; a study with other sizes (the mini study) lists its own cells in that order
        own = [
            c for kind in ("correct", "incorrect", "hard", "easy") for c in sorted(cells) if c.startswith(f"{kind}-")
        ]
        for row in TABLE2_ROWS if set(own) & set(TABLE2_ROWS) or not own else ("baseline", *own):
            run = cells.get(row)
            paper = PAPER_TABLE2.get(row, (None, None)) if model == "qwen" else (None, None)
            rows.append(
                Table2Row(
                    student=model,
                    start=base or "instruct",
                    row=row,
                    label=run.label if run else None,
                    pass_at_1=metric(run, "pass_at_1"),
                    ci_low=metric(run, "pass_at_1_ci_low"),
                    ci_high=metric(run, "pass_at_1_ci_high"),
                    paper_pass_at_1=paper[1] if base else paper[0],
                    completion_rate=metric(run, "completion_rate"),
                    think_tag_rate=metric(run, "think_tag_rate"),
                )
            )
    return rows


def _paired(student: str, start: str, a: EvaluatedRun, b: EvaluatedRun, scores: Scores) -> ContrastRow:
    from valley.eval.metrics import paired_bootstrap

    contrast = paired_bootstrap(scores(a), scores(b), names=(a.label, b.label), seed=a.eval_spec.get("seed", 0))
    return ContrastRow(student=student, start=start, **contrast.as_dict())


def contrasts(runs: list[EvaluatedRun], scores: Scores) -> list[ContrastRow]:
    """Paired bootstrap over problems for correct vs incorrect and easy vs hard at each starting point."""
    results = []
    for model, base in _starting_points(runs):
        group = [r for r in runs if r.model == model and r.base == base]
        for first, second in CONTRASTS:
            for a in (r for r in group if r.subset == first):
                b = next((r for r in group if r.subset == second and r.size == a.size), None)
                if b is not None:
                    results.append(_paired(model, base or "instruct", a, b, scores))
    return results


def size_contrasts(runs: list[EvaluatedRun], scores: Scores) -> list[ContrastRow]:
    """Paired bootstrap over problems: each student's largest RQ1 run against its untrained baseline."""
    results = []
    for model in sorted({r.model for r in runs}):
        trained, baseline = trained_rq1(runs, model), start_run(runs, model, None)
        if trained and baseline is not None:
            results.append(_paired(model, "instruct", trained[-1], baseline, scores))
    return results


def valley_fit(runs: list[EvaluatedRun], target: float | None) -> list[ValleyFit]:
    """Per student: least-squares pass@1 = a + b ln(N) over the RQ1 sizes from the valley's bottom on."""
    fits = []
    for model in sorted({r.model for r in runs}):
        points = [(r.size, r.metrics["pass_at_1"]) for r in trained_rq1(runs, model)]
        if not points:
            continue
        bottom = min(range(len(points)), key=lambda i: points[i][1])
        after = points[bottom:]
        sizes = [s for s, _ in after]
        common = {"student": model, "sizes": sizes, "bottom_size": points[bottom][0], "target": target}
        if len(set(sizes)) < 2:
            why = f"fewer than two sizes after the bottom ({format_size(points[bottom][0])}); no trend"
            fits.append(ValleyFit(**common, refused=why))
            continue
        if len({p for _, p in after}) == 1:
            why = (
                f"pass@1 is {after[0][1]:.4f} at every size from the bottom on "
                f"({', '.join(format_size(s) for s in sizes)}); a line through constant scores measures nothing"
            )
            fits.append(ValleyFit(**common, refused=why))
            continue
        import numpy as np

        slope, intercept = (float(v) for v in np.polyfit([math.log(s) for s in sizes], [p for _, p in after], 1))
        predicted = math.exp((target - intercept) / slope) if target is not None and slope > 0 else None
        fits.append(ValleyFit(**common, intercept=intercept, slope_per_ln_size=slope, predicted_size=predicted))
    return fits
