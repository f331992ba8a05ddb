"""`valley data …`: build a run's SFT subset, generate teacher responses, write the sample corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from valley.errors import typer_app

data_app = typer_app("Build, label and format SFT data subsets.")


@data_app.command("sample-corpus")
def data_sample_corpus(
    out: Annotated[Path, typer.Option("--out", help="directory for taco.jsonl, ocr2.jsonl and lcb.jsonl")],
) -> None:
    """Write the sample corpus valley ships (original problems in the real datasets' schemas).

    Example: valley data sample-corpus --out /tmp/corpus
    """
    from valley.data.sample_corpus import write_sample_corpus

    for name, path in write_sample_corpus(out).items():
        typer.echo(f"{name}: {path}")


@data_app.command("build")
def data_build(
    run_spec: Annotated[Path, typer.Option("--run-spec", help="the run's RunSpec JSON (written by valleyctl)")],
    tokenizer: Annotated[Path, typer.Option("--tokenizer", help="student model dir: its tokenizer and chat template")],
    out: Annotated[Path, typer.Option("--out", help="subset directory: train.jsonl, token_stats.json, manifest.json")],
    local: Annotated[Path | None, typer.Option("--local", help="corpus dir (taco/ocr2.jsonl…) instead of the packaged sample or the Hub")] = None,
    sandbox: Annotated[str, typer.Option("--sandbox", help="grader sandbox for RQ2 labels: auto|runsc|process")] = "auto",
    workers: Annotated[int | None, typer.Option("--workers", help="parallel gradings for RQ2 labels (default: CPU count)")] = None,
) -> None:
    """Build a run's SFT subset; reruns with the same inputs reuse it.

    Logs the subset as the training input of the attached MLflow run (MLFLOW_RUN_ID).

    Example: valley data build --run-spec run.json --tokenizer .valley/models/tiny-qwen --out .valley/data/x
    """
    from manager.specs import RunSpec
    from valley.data.build import build_subset
    from valley.data.lineage import log_subset_input

    spec = RunSpec.from_json(run_spec.read_text())
    manifest = build_subset(spec, tokenizer, out, local, sandbox=sandbox, workers=workers)
    logged = log_subset_input(manifest)
    typer.echo(f"{manifest}" + (" (logged as the run's training input)" if logged else ""))
