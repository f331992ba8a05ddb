"""The valley plot (Figure 1 of the paper): pass@1, completion rate and think-tag rate against
SFT data size on a log axis, one series per student.

Drawn to be read, not only to exist: x ticks at exactly the study's sizes; each student with
its own colour and marker and a small horizontal offset, so no series hides another; the
untrained baseline as a point of its own at a `base` tick left of the smallest size (a break
line between them) and as a dotted level across the panel; every point with its 95% CI bar;
the y axis starting just below 0, so scores of 0 sit above the axis instead of on it; and on
the pass@1 panel each student's post-valley log-linear fit drawn with its equation.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from manager.compare.analyse import ValleyFit, start_run, trained_rq1
from manager.compare.read import EvaluatedRun
from valley.files import write_atomic
from valley.spec import format_size

#: the plot's panels: the valley itself, then Table 1's two rates, which move before the score does
PANELS = (
    ("pass_at_1", "LiveCodeBench pass@1"),
    ("completion_rate", "completion rate"),
    ("think_tag_rate", "think-tag rate"),
)
MARKERS = ("o", "s", "^", "D", "v")
#: multiplicative step between students' x positions (log axis): visible, far from the next size
OFFSET = 1.07
#: where the baselines sit, as a fraction of the smallest trained size
BASE_POSITION = 0.35


def tick_label(size: int) -> str:
    """`1K`, `10K`, `30K` as the paper writes them; small sizes as counts."""
    return format_size(size).upper()


def valley_plot(runs: list[EvaluatedRun], fits: list[ValleyFit], study: str, path: Path) -> Path:
    """Write the figure as PNG to `path` (atomically) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    students = sorted({r.model for r in runs})
    sizes = sorted({r.size for model in students for r in trained_rq1(runs, model)})
    base_x = (sizes[0] if sizes else 1) * BASE_POSITION
    fit_of = {fit.student: fit for fit in fits if fit.refused is None}
    figure, panels = plt.subplots(1, len(PANELS), figsize=(16, 5))
    for axes, (metric, title) in zip(panels, PANELS, strict=True):
        top = 0.0
        for index, model in enumerate(students):
            style = {"color": f"C{index}", "marker": MARKERS[index % len(MARKERS)], "capsize": 3, "markersize": 6}
            shift = OFFSET ** (index - (len(students) - 1) / 2)
            trained = trained_rq1(runs, model)
            baseline = start_run(runs, model, None)
            if trained:
                top = max(top, _series(axes, [r.size * shift for r in trained], trained, metric, label=model, **style))
            if baseline is not None and metric in baseline.metrics:
                top = max(
                    top,
                    _series(
                        axes, [base_x * shift], [baseline], metric, label=f"{model} untrained", mfc="white", **style
                    ),
                )
                axes.axhline(baseline.metrics[metric], color=style["color"], linestyle=":", linewidth=1, alpha=0.7)
            fit = fit_of.get(model)
            if metric == "pass_at_1" and fit is not None:
                xs = [min(fit.sizes) * (max(fit.sizes) / min(fit.sizes)) ** (i / 50) for i in range(51)]
                axes.plot(
                    xs, [fit.at(x) for x in xs], color=style["color"], linestyle="--", linewidth=1.2,
                    label=f"{model} fit: {fit.equation}",
                )  # fmt: skip
                top = max(top, *(fit.at(x) for x in xs))
        axes.set_xscale("log")
        if sizes:
            axes.axvline(math.sqrt(base_x * sizes[0]), color="0.6", linewidth=0.8, linestyle="-")
            axes.xaxis.set_major_locator(FixedLocator([base_x, *sizes]))
            axes.set_xticklabels(["base", *map(tick_label, sizes)])
            axes.set_xlim(base_x / 1.6, sizes[-1] * 1.6)
        axes.xaxis.set_minor_locator(NullLocator())
        top = 1.0 if metric != "pass_at_1" else min(1.0, max(0.1, top) * 1.15)
        axes.set_ylim(-0.04 * top, top * 1.04)  # a score of 0 sits just above the axis, not on it
        axes.set_xlabel("SFT examples (log scale; base = untrained)")
        axes.set_ylabel(title)
        axes.set_title(title)
        axes.grid(True, axis="y", alpha=0.3)
    panels[0].legend(fontsize=8, loc="upper left")
    figure.suptitle(f"The valley of code reasoning: study {study} (error bars: 95% bootstrap CI over problems)")
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=120)
    plt.close(figure)
    return write_atomic(path, image.getvalue())


def _series(axes, xs: list[float], runs: list[EvaluatedRun], metric: str, **style) -> float:
    """One student's points with their CI bars (where the run logged them); returns the highest bar end."""
    values = [r.metrics.get(metric, float("nan")) for r in runs]
    lows = [r.metrics.get(f"{metric}_ci_low", v) for r, v in zip(runs, values, strict=True)]
    highs = [r.metrics.get(f"{metric}_ci_high", v) for r, v in zip(runs, values, strict=True)]
    errors = [
        [max(0.0, v - low) for v, low in zip(values, lows, strict=True)],
        [max(0.0, high - v) for v, high in zip(values, highs, strict=True)],
    ]
    axes.errorbar(xs, values, yerr=errors, linestyle="-" if len(xs) > 1 else "none", **style)
    return max((h for h in highs if not math.isnan(h)), default=0.0)
