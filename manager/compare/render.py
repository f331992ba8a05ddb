"""A comparison as people read it in a terminal: the two tables, the contrasts, the fits."""

from __future__ import annotations

import math

from manager.compare.analyse import Comparison
from valley.spec import format_size


def num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def interval(low: float | None, high: float | None, digits: int = 3) -> str:
    return "—" if low is None or high is None else f"{num(low, digits)}–{num(high, digits)}"


def render(result: Comparison, console) -> None:
    from rich.table import Table

    if result.pending:
        console.print(f"not yet evaluated: {', '.join(result.pending)}")
    one = Table(title=f"Table 1 — completion and think-tag rates ({result.study}; paper beside ours)")
    for column in ("student", "size", "completion", "paper", "think-tag", "paper ", "pass@1", "95% CI"):
        one.add_column(column, justify="left" if column == "student" else "right")
    for r in result.table1:
        one.add_row(
            r.student,
            format_size(r.size) if r.size else "baseline",
            num(r.completion_rate),
            num(r.paper_completion_rate),
            num(r.think_tag_rate),
            num(r.paper_think_tag_rate),
            num(r.pass_at_1),
            interval(r.ci_low, r.ci_high),
        )
    console.print(one)
    if result.table2:
        two = Table(title="Table 2 — LCB pass@1 of the RQ2/RQ3 runs (95% CI; paper beside ours)")
        for column in ("student", "start", "row", "pass@1", "95% CI", "paper"):
            two.add_column(column, justify="right" if column in ("pass@1", "paper") else "left")
        for r in result.table2:
            two.add_row(
                r.student, r.start, r.row, num(r.pass_at_1), interval(r.ci_low, r.ci_high), num(r.paper_pass_at_1, 3)
            )
        console.print(two)
    else:
        console.print("Table 2: no RQ2/RQ3 runs in this study")
    for c in result.contrasts:
        console.print(
            f"{c.a} − {c.b} ({c.start}): {c.difference:+.4f} [95% CI {c.ci_low:+.4f}, {c.ci_high:+.4f}] "
            f"over {c.problems} problems; P(not above) = {c.p_not_above:.3f}"
        )
    for fit in result.valley_fit:
        if fit.refused:
            console.print(f"valley fit {fit.student}: none, {fit.refused}")
            continue
        line = (
            f"valley fit {fit.student}: pass@1 ≈ {fit.intercept:.4f} + {fit.slope_per_ln_size:.4f}·ln N "
            f"over N = {', '.join(format_size(s) for s in fit.sizes)}"
        )
        if fit.target is not None:
            line += (
                f"; pass@1 {fit.target} needs N ≈ {fit.predicted_size:,.0f} (extrapolated)"
                if fit.predicted_size
                else f"; no rise after the valley, so no size reaches {fit.target}"
            )
        console.print(line)
    if result.plot:
        where = f"logged to MLflow run {', '.join(result.logged_to)}" if result.logged_to else "not logged to MLflow"
        console.print(f"valley plot: {result.plot} ({where})")
