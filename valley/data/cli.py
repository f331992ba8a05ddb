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
