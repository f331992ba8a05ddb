"""`valleyctl plan`: the study grid as rows, with its GPU-hour estimate."""

from __future__ import annotations

from manager.study import CostAssumptions, gpu_hours, nested_in, shared_subsets, study_runs
from valley.train.steps import step_plan


def plan_rows(study: str) -> tuple[list[dict], list[str]]:
    runs = study_runs(study)
    assumptions = CostAssumptions()
    shared = shared_subsets(runs)
    rows = []
    for run in runs:
        steps = step_plan(run.data.size, run.train) if run.data and run.train else None
        train_hours, eval_hours = gpu_hours(run, assumptions)
        rows.append(
            {
                "name": run.name,
                "label": run.label,
                "rq": run.rq,
                "model": run.model.hf_id,
                "size": run.data.size if run.data else 0,
                "subset": run.data.subset if run.data else None,
                "data_key": run.data.key if run.data else None,
                "shares_data_with": [other for other in shared.get(run.data.key, []) if other != run.label]
                if run.data
                else [],
                "nested_in": nested_in(run, runs),
                "depends_on": run.base.name if run.base else None,
                "global_batch": run.train.global_batch_size if run.train else None,
                "grad_accum": run.train.gradient_accumulation_steps if run.train else None,
                "lr": run.train.lr if run.train else None,
                "epochs": run.train.epochs if run.train else None,
                "steps_per_epoch": steps.steps_per_epoch if steps else 0,
                "total_steps": steps.total_steps if steps else 0,
                "warmup_steps": steps.warmup_steps if steps else 0,
                "gpus": run.train.data_parallel_size if run.train else run.eval.gpus,
                "train_gpu_hours": round(train_hours, 1),
                "eval_gpu_hours": round(eval_hours, 1),
            }
        )
    return rows, assumptions.lines()


def render_plan_table(study: str, rows: list[dict], assumptions: list[str], out) -> None:
    """The plan as a table and the assumptions behind its GPU-hours, through the CLI's Output."""
    from rich.table import Table

    table = Table(
        title=f"study {study}: {sum(1 for r in rows if r['size'])} training runs, "
        f"{sum(1 for r in rows if not r['size'])} baselines"
    )
    for column in (
        "run",
        "rq",
        "size",
        "steps/epoch",
        "total",
        "warmup",
        "depends on",
        "shares data",
        "GPU-h train+eval",
    ):
        table.add_column(column, justify="right" if column in {"size", "steps/epoch", "total", "warmup"} else "left")
    for r in rows:
        table.add_row(
            r["label"],
            r["rq"],
            str(r["size"] or "-"),
            str(r["steps_per_epoch"] or "-"),
            str(r["total_steps"] or "-"),
            str(r["warmup_steps"] or "-"),
            r["depends_on"] or "",
            ", ".join(r["shares_data_with"]),
            f"{r['train_gpu_hours']}+{r['eval_gpu_hours']}",
        )
    out.table(table)
    total = sum(r["train_gpu_hours"] + r["eval_gpu_hours"] for r in rows)
    out.line(f"total ≈ {total:,.0f} GPU-hours, assuming:")
    for line in assumptions:
        out.line(f"  - {line}")
