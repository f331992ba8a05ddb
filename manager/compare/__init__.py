"""`valleyctl compare`: a study's runs read back from MLflow, next to the paper's numbers.

One module per job: `read` (each run's spec from its `spec/run.json` artifact, its metrics and
per-problem scores), `analyse` (Tables 1-2, paired bootstraps, the valley fit; typed rows),
`plot` (the valley plot), `write_back` (artifacts into the study run, only when asked) and
`render` (the terminal form). `compare_study` runs them in that order and returns a
`Comparison`. Runs evaluated under different eval specs are never put side by side (one line
names the field).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from manager.compare.analyse import Comparison, contrasts, size_contrasts, table1, table2, valley_fit
from manager.compare.read import EvaluatedRun, check_same_eval, load_runs, per_problem_scores
from manager.compare.render import render
from valley.files import write_atomic

__all__ = ["Comparison", "EvaluatedRun", "check_same_eval", "compare_study", "render"]


def compare_study(
    study: str,
    tracking_uri: str | None,
    out_dir: Path,
    *,
    target: float | None = None,
    allow_mixed_eval: bool = False,
    log_to_study_run: bool = False,
    log_to_run: str | None = None,
) -> Comparison:
    """Read, analyse and plot the study; write the plot and `compare-<study>.json` to `out_dir`,
    and log both to the study's run in MLflow (`log_to_study_run`) and to run `log_to_run`."""
    from manager.compare.plot import valley_plot
    from manager.compare.write_back import log_to_run as write_back
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

    fits = valley_fit(runs, target)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = valley_plot(runs, fits, study, out_dir / f"valley-{study}.png") if runs else None
    result = Comparison(
        study=study,
        tracking_uri=tracker.uri,
        runs=[r.label for r in runs],
        pending=pending,
        eval_spec=runs[0].eval_spec if runs else None,
        table1=table1(runs),
        table2=table2(runs),
        contrasts=size_contrasts(runs, scores) + contrasts(runs, scores),
        valley_fit=fits,
        plot=str(plot) if plot else None,
    )
    summary = out_dir / f"compare-{study}.json"
    write_atomic(summary, json.dumps(dataclasses.asdict(result), indent=2) + "\n")
    targets = [tracker.study_run_id(study)] if log_to_study_run else []
    targets += [log_to_run] if log_to_run else []
    files = [path for path in (plot, summary) if path]
    return dataclasses.replace(result, logged_to=[write_back(tracker, run_id, files) for run_id in targets])
