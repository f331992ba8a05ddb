#!/usr/bin/env python3
"""Regenerate the README's mini-valley figures from the demo's store: the valley plot and the table.

    .venv/bin/python scripts/readme-mini-figures.py [--store sqlite:///mlflow.db]

Runs the same comparison as `valleyctl compare --study mini`, writes the plot to
docs/images/valley-mini.png and the measured table (Markdown) between the
`mini-figures` markers of README.md, so both always come from one demo run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PLOT = ROOT / "docs" / "images" / "valley-mini.png"
BEGIN, END = "<!-- mini-figures:begin -->", "<!-- mini-figures:end -->"


def num(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def with_ci(value, low, high) -> str:
    return f"{num(value)} ({num(low)}–{num(high)})"


def markdown(result) -> str:
    """Every evaluated run once (Table 1's, then Table 2's own), each pass@1 with its 95% CI."""
    lines = ["| run | pass@1 (95% CI) | completion | think-tag |", "|---|---|---|---|"]
    for row in result.table1:
        lines.append(
            f"| {row.label} | {with_ci(row.pass_at_1, row.ci_low, row.ci_high)} | {num(row.completion_rate)} | "
            f"{num(row.think_tag_rate)} |"
        )
    listed = {row.label for row in result.table1}
    for row in result.table2:
        if row.label and row.label not in listed:
            listed.add(row.label)
            lines.append(
                f"| {row.label} | {with_ci(row.pass_at_1, row.ci_low, row.ci_high)} | {num(row.completion_rate)} | "
                f"{num(row.think_tag_rate)} |"
            )
    lines.append("")
    for c in result.contrasts:
        lines.append(
            f"- {c.a} − {c.b}: {c.difference:+.3f} [95% CI {c.ci_low:+.3f}, {c.ci_high:+.3f}] "
            f"over {c.problems} problems, P(not above) = {c.p_not_above:.3f}"
        )
    for fit in result.valley_fit:
        lines.append(f"- valley fit {fit.student}: {fit.refused or fit.equation}")
    return "\n".join(lines)


def main() -> None:
    from manager.compare import compare_study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = compare_study("mini", args.store, Path(tmp))
        PLOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.plot, PLOT)
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = f"{BEGIN}\n{markdown(result)}\n{END}"
    readme.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))
    print(f"{PLOT.relative_to(ROOT)} and README.md's table regenerated from {len(result.runs)} runs")


if __name__ == "__main__":
    main()
