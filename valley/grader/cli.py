"""`valley grade` and `valley grader serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from valley.cli_kit import typer_app
from valley.errors import ValleyError

grader_app = typer_app("Run the grader as a sidecar server.")

SandboxOpt = Annotated[
    str,
    typer.Option(
        help="auto (runsc when installed), runsc, process, in-gvisor (inside a gVisor pod) or unsafe-local "
        "(no namespaces: explicit degraded mode)"
    ),
]
WorkersOpt = Annotated[Optional[int], typer.Option(help="programs graded at once [default: one per CPU]")]


def grade_command(
    problems: Annotated[Path, typer.Option(help="LiveCodeBench rows in the dataset's own schema (JSONL)")],
    generations: Annotated[Path, typer.Option(help='{"question_id","sample_id","response"} rows (JSONL)')],
    out: Annotated[Path, typer.Option(help="verdict rows (JSONL); an existing file is resumed")],
    sandbox: SandboxOpt = "auto",
    workers: WorkersOpt = None,
    timeout_s: Annotated[Optional[float], typer.Option(help="per-test timeout [default: 6 s LCB, 4 s TACO]")] = None,
    early_stop: Annotated[
        bool, typer.Option(help="stop at a program's first failing test, as LiveCodeBench does")
    ] = True,
) -> None:
    """Grade generations against LiveCodeBench problems.

    Example: valley grade --problems lcb.jsonl --generations eval/generations.jsonl --out eval/verdicts.jsonl
    """
    from valley.grader.grading import grade_batch, load_problems, read_jsonl

    for flag, path in (("--problems", problems), ("--generations", generations)):
        if not path.is_file():
            raise ValleyError(f"{flag}: no file at {path}; pass an existing JSONL file")
    kind = _isolation(sandbox)
    try:
        with open(generations, "rb") as handle:
            total = sum(1 for line in handle if line.strip())
        summary = grade_batch(
            load_problems(problems),
            read_jsonl(generations),
            out,
            sandbox=kind,
            workers=workers,
            timeout_s=timeout_s,
            early_stop=early_stop,
            total=total,
        )
    except ValueError as error:
        raise ValleyError(str(error)) from None
    rates = ", ".join(f"{key} {value:.4f}" for key, value in summary.items() if key.startswith("pass@"))
    typer.echo(
        f"graded {summary['problems']} problems ({kind}): {rates or 'no verdicts'}; infra errors "
        f"{summary['infra_errors']} -> {out}"
    )


def _isolation(sandbox: str) -> str:
    """The sandbox kind once its isolation is known to work here; one line naming the fix otherwise."""
    from valley.grader.sandbox import IsolationUnavailable, require_isolation

    try:
        return require_isolation(sandbox)
    except ValueError as error:
        raise ValleyError(f"--sandbox: {error}") from None
    except IsolationUnavailable as error:
        raise ValleyError(f"--sandbox {sandbox}: {error}") from None


@grader_app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="bind address; 0.0.0.0 only inside a pod")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    sandbox: SandboxOpt = "auto",
    workers: WorkersOpt = None,
    max_pending: Annotated[int, typer.Option(help="requests queued or running before 429")] = 8,
    max_request_mb: Annotated[int, typer.Option(help="largest accepted request body (413 above)")] = 256,
) -> None:
    """Serve GET /healthz and POST /grade.

    Example: valley grader serve --port 8000
    """
    from valley.grader.server import serve

    _isolation(sandbox)
    serve(host, port, sandbox=sandbox, workers=workers, max_pending=max_pending, max_request_mb=max_request_mb)
