"""`valley data …`: build a run's SFT subset, generate teacher responses, write the sample corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from valley.cli_kit import RunSpecOpt, load_run_spec, typer_app

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
    run_spec: RunSpecOpt,
    tokenizer: Annotated[Path, typer.Option("--tokenizer", help="student model dir: its tokenizer and chat template")],
    out: Annotated[Path, typer.Option("--out", help="subset directory: train.jsonl, token_stats.json, manifest.json")],
    local: Annotated[
        Path | None,
        typer.Option("--local", help="corpus dir (taco/ocr2.jsonl…) instead of the packaged sample or the Hub"),
    ] = None,
    sandbox: Annotated[
        str,
        typer.Option(
            "--sandbox", help="grader sandbox for RQ2 labels graded in-process: auto|runsc|process|unsafe-local"
        ),
    ] = "auto",
    workers: Annotated[
        int | None, typer.Option("--workers", help="parallel gradings for RQ2 labels (default: CPU count)")
    ] = None,
    grader_url: Annotated[
        str | None,
        typer.Option(
            "--grader-url",
            help="grade RQ2 labels through this grader (the data Job's gVisor sidecar) instead of in-process; "
            "required on a cluster",
        ),
    ] = None,
) -> None:
    """Build a run's SFT subset; reruns with the same inputs reuse it.

    Logs the subset as the training input of the attached MLflow run (MLFLOW_RUN_ID).

    Example: valley data build --run-spec run.json --tokenizer .valley/models/tiny-qwen --out .valley/data/x
    """
    from valley.data.build import build_subset
    from valley.data.lineage import log_subset_input

    spec = load_run_spec(run_spec)
    manifest = build_subset(spec, tokenizer, out, local, sandbox=sandbox, workers=workers, grader_url=grader_url)
    logged = log_subset_input(manifest)
    summary = json.loads(manifest.read_text())
    stats = summary["token_stats"]
    typer.echo(
        f"{summary['key']}: {summary['sizes']['written']} examples, {stats['tokens_kept']:,} tokens "
        f"(mean {stats['mean']:,.0f}, {stats['share_above_max_seq_len']:.1%} over {stats['max_seq_len']:,}, "
        f"{stats['dropped']} dropped) -> {manifest}" + (" (logged as the run's training input)" if logged else "")
    )


@data_app.command("lcb")
def data_lcb(
    run_spec: RunSpecOpt,
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="jsonl of LiveCodeBench rows (the dataset's own schema) for `valley eval --lcb-path`"
        ),
    ],
) -> None:
    """Stage the run's LiveCodeBench problems as a file, for eval pods that have no Hub access.

    \b
    Example:
      valley data lcb --run-spec run.json \\
        --out /datasets/lcb/livecodebench-release_v5-2024-08-01-2025-01-31.jsonl
    """
    from valley.data.lcb import load_lcb_problems
    from valley.files import write_atomic

    spec = load_run_spec(run_spec)
    rows = load_lcb_problems(spec.eval)
    write_atomic(out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    typer.echo(
        f"{out}: {len(rows)} problems from {spec.eval.lcb_release}, {spec.eval.date_start}..{spec.eval.date_end}"
    )


@data_app.command("generate")
def data_generate(
    teacher: Annotated[
        str, typer.Option("--teacher", help="teacher model: an HF-format directory or Hub id vLLM can load")
    ],
    k: Annotated[int, typer.Option("-k", help="responses sampled per question (the paper: about 7)")],
    out: Annotated[Path, typer.Option("--out", help="OCR2-schema jsonl to append to (resumes where it stopped)")],
    source: Annotated[
        str, typer.Option("--source", help="questions from: sample (packaged) | ocr2 (Hub or --local)")
    ] = "sample",
    local: Annotated[Path | None, typer.Option("--local", help="corpus dir in the sample-corpus layout")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="only the first N questions")] = None,
    temperature: Annotated[float, typer.Option("--temperature")] = 0.6,
    top_p: Annotated[float, typer.Option("--top-p")] = 0.95,
    max_model_len: Annotated[int, typer.Option("--max-model-len", help="prompt + response tokens")] = 32768,
    seed: Annotated[int, typer.Option("--seed", help="base of the per-question sampling seeds")] = 0,
    tensor_parallel_size: Annotated[int, typer.Option("--tensor-parallel-size")] = 1,
) -> None:
    """Sample k teacher responses per question with vLLM into an OCR2-schema jsonl.

    Example: valley data generate --teacher deepseek-ai/DeepSeek-R1-0528 -k 7 --out r1.jsonl --source ocr2
    """
    from valley.data.teacher import generate

    if source not in ("sample", "ocr2"):
        raise typer.BadParameter("use sample or ocr2", param_hint="--source")
    written = generate(
        teacher,
        out,
        k=k,
        source=source,
        local=local,
        limit=limit,
        temperature=temperature,
        top_p=top_p,
        max_model_len=max_model_len,
        seed=seed,
        tensor_parallel_size=tensor_parallel_size,
    )
    typer.echo(f"{out}: {written} new responses")
