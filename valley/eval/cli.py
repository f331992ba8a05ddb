"""`valley eval`: evaluate a student on LiveCodeBench and log the metrics to its run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from valley.cli_kit import RunSpecOpt, load_run_spec

ModelOpt = Annotated[
    Path,
    typer.Option(
        "--model", help="HF-format model directory (base model or checkpoint final/).", exists=True, file_okay=False
    ),
]
OutOpt = Annotated[
    Path, typer.Option("--out", help="Eval directory: generations.jsonl, verdicts.jsonl, metrics.json; reruns resume.")
]
LcbPathOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--lcb-path", help="Local LCB jsonl instead of the Hugging Face dataset.", exists=True, dir_okay=False
    ),
]
AllowInfraOpt = Annotated[
    int,
    typer.Option(
        "--allow-infra-errors",
        min=0,
        help="Programs the grader may fail to run (infra_error, left out of pass@1) before the eval fails.",
    ),
]
GraderUrlOpt = Annotated[
    Optional[str],
    typer.Option("--grader-url", help="Grader sidecar URL, e.g. http://127.0.0.1:8000; default grades in-process."),
]


def eval_command(
    run_spec: RunSpecOpt,
    model: ModelOpt,
    out: OutOpt,
    lcb_path: LcbPathOpt = None,
    grader_url: GraderUrlOpt = None,
    allow_infra_errors: AllowInfraOpt = 0,
) -> None:
    """Generate with vLLM, grade in the sandbox, log pass@1 (95% CI), completion and think-tag rates.

    \b
    Examples:
      valley eval --run-spec run.json --model .valley/models/tiny-qwen --out .valley/eval/mini-tiny-qwen-baseline
      valley eval --run-spec run.json --model /checkpoints/valley-qwen-10k-1a2b3c4d/final --out /eval --grader-url http://127.0.0.1:8000
    """
    from valley.eval.run import evaluate

    spec = load_run_spec(run_spec)
    metrics = evaluate(
        spec, model, out, lcb_path=lcb_path, grader_url=grader_url, allow_infra_errors=allow_infra_errors
    )
    low, high = metrics["pass_at_1_ci_low"], metrics["pass_at_1_ci_high"]
    print(
        f"{spec.label}: pass@1 {metrics['pass_at_1']:.4f} (95% CI {low:.4f}-{high:.4f}), "
        f"completion {metrics['completion_rate']:.4f}, think-tag {metrics['think_tag_rate']:.4f}, "
        f"{metrics['mean_response_tokens']:.0f} tokens/response -> {out}"
    )
