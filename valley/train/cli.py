"""`valley model fetch` and `valley train`: put a student on disk, fine-tune it with torchtune."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from valley.cli_kit import RunSpecOpt, typer_app

model_app = typer_app("Fetch student models (tiny ones are built locally).")

ModelDirOpt = Annotated[Path, typer.Option("--model", help="HF-format student directory (valley model fetch)")]


@model_app.command("fetch")
def model_fetch(
    preset: Annotated[str, typer.Option("--preset", help="qwen | llama | tiny-qwen | tiny-llama")],
    out: Annotated[Path, typer.Option("--out", help="model directory to create (reused when complete)")],
) -> None:
    """Download a real student from the Hub, or build a tiny one; a complete --out is reused.

    \b
    Examples:
      valley model fetch --preset tiny-qwen --out .valley/models/tiny-qwen
      HF_TOKEN=... valley model fetch --preset llama --out /models/llama
    """
    from valley.errors import ConfigError
    from valley.spec import MODEL_PRESETS
    from valley.train.fetch import fetch_model

    if preset not in MODEL_PRESETS:
        raise ConfigError(f"--preset: unknown preset {preset!r}; allowed: {', '.join(MODEL_PRESETS)}")
    spec = MODEL_PRESETS[preset]
    record = fetch_model(spec, out)
    typer.echo(f"{record['preset']} ({record['hf_id']} @ {record['revision']}) at {out.resolve()}")


def train_command(
    run_spec: RunSpecOpt,
    data: Annotated[
        Path, typer.Option("--data", help="built subset directory holding train.jsonl (valley data build)")
    ],
    model: ModelDirOpt,
    out: Annotated[
        Path, typer.Option("--out", help="checkpoint directory; the final HF checkpoint lands in OUT/final")
    ],
    base_checkpoint: Annotated[
        Optional[Path], typer.Option("--base-checkpoint", help="final checkpoint of the base run (continued runs)")
    ] = None,
) -> None:
    """Fine-tune a student with torchtune's full_finetune recipe, logging into the attached MLflow run.

    Writes OUT/config.yaml, runs `tune run`, resumes from OUT/torchtune after an interruption,
    exports the final epoch to OUT/final and registers it in the run by reference.
    Exit code 3: configuration error (do not retry); 1: runtime error.

    \b
    Examples:
      valley train --run-spec run.json --data .valley/data/x --model .valley/models/tiny-qwen \\
        --out .valley/checkpoints/r
    """
    from valley.train.sft import train

    final = train(run_spec, data_dir=data, model_dir=model, out_dir=out, base_checkpoint=base_checkpoint)
    typer.echo(f"final checkpoint: {final}")
