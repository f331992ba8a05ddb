"""The grader's command line, defined once for both entry points: `python -m valley.grader`
(the grader image: standard library only) and `valley grade` / `valley grader serve`, which
hand their arguments to `main` unchanged.

Exit codes keep the contract of valley.errors: 0 done, 1 a runtime failure (retrying may help),
3 a configuration error (bad usage, a missing input file, or the isolation asked for refused
here): the Jobs' podFailurePolicy fails at once on 3 instead of retrying.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from valley.errors import CONFIG_ERROR_EXIT
from valley.grader.isolation import SANDBOX_KINDS, IsolationUnavailable

SANDBOX_HELP = (
    "auto (runsc when installed), runsc, process, in-gvisor (inside a gVisor pod) or unsafe-local "
    "(no namespaces: explicit degraded mode)"
)
EXAMPLES = {
    "grade": "--problems lcb.jsonl --generations eval/generations.jsonl --out eval/verdicts.jsonl",
    "serve": "--port 8000",
    "check": "--sandbox in-gvisor",
}


class UsageError(Exception):
    """A command line the parser refuses: a configuration error, never retried."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the usage and exit 2
        raise UsageError(f"{message}; see {self.prog} --help")


def parser(prog: str) -> argparse.ArgumentParser:
    root = _Parser(prog=prog, description="Grade untrusted programs against LiveCodeBench/TACO tests in a sandbox.")
    commands = root.add_subparsers(dest="command", required=True)
    grade = commands.add_parser(
        "grade", help="grade a generations file", description=f"Example: {prog} grade {EXAMPLES['grade']}"
    )
    grade.add_argument("--problems", type=Path, required=True, help="LiveCodeBench rows in the dataset's schema")
    grade.add_argument("--generations", type=Path, required=True, help='{"question_id","sample_id","response"} rows')
    grade.add_argument("--out", type=Path, required=True, help="verdict rows (JSONL); an existing file is resumed")
    serve = commands.add_parser(
        "serve", help="serve GET /healthz and POST /grade", description=f"Example: {prog} serve {EXAMPLES['serve']}"
    )
    serve.add_argument("--host", default="127.0.0.1", help="bind address; 0.0.0.0 only inside a pod (%(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (%(default)s)")
    check = commands.add_parser(
        "check",
        help="exit 0 if the sandbox's isolation works here, else 3 with one line naming the fix",
        description=f"Example: {prog} check {EXAMPLES['check']}",
    )
    for command in (grade, serve, check):
        command.add_argument("--sandbox", default="auto", choices=SANDBOX_KINDS, help=SANDBOX_HELP)
    for command in (grade, serve):
        command.add_argument("--workers", type=int, default=None, help="programs graded at once (one per CPU)")
    grade.add_argument("--timeout-s", type=float, default=None, help="per-test timeout (6 s LCB, 4 s TACO)")
    grade.add_argument(
        "--early-stop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop at a program's first failing test, as LiveCodeBench does (%(default)s)",
    )
    serve.add_argument("--max-pending", type=int, default=8, help="requests queued or running before 429 (%(default)s)")
    serve.add_argument("--max-request-mb", type=int, default=256, help="largest request body, 413 above (%(default)s)")
    serve.add_argument(
        "--read-timeout-s", type=float, default=60.0, help="a request must be read within this, 408 after (%(default)s)"
    )
    serve.add_argument(
        "--drain-s", type=float, default=25.0, help="after SIGTERM, running requests get this long (%(default)s)"
    )
    return root


def main(argv: list[str] | None = None, prog: str = "python -m valley.grader") -> int:
    try:
        args = parser(prog).parse_args(argv)
        return {"grade": _grade, "serve": _serve, "check": _check}[args.command](args)
    except (UsageError, IsolationUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _check(args: argparse.Namespace) -> int:
    """The grader sidecar's preflight: an ordinary init container whose exit 3 the Job's
    podFailurePolicy sees (a restartable sidecar's exit restarts it instead, for ever)."""
    from valley.grader.isolation import require_isolation

    print(f"sandbox {require_isolation(args.sandbox)}: isolation available")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from valley.grader.server import serve

    serve(
        args.host,
        args.port,
        sandbox=args.sandbox,
        workers=args.workers,
        max_pending=args.max_pending,
        max_request_mb=args.max_request_mb,
        read_timeout_s=args.read_timeout_s,
        drain_s=args.drain_s,
    )
    return 0


def _grade(args: argparse.Namespace) -> int:
    from valley.grader.grading import grade_batch, load_problems, read_jsonl
    from valley.grader.isolation import require_isolation

    for flag, path in (("--problems", args.problems), ("--generations", args.generations)):
        if not path.is_file():
            raise UsageError(f"{flag}: no file at {path}; pass an existing JSONL file")
    kind = require_isolation(args.sandbox)
    with open(args.generations, "rb") as handle:
        total = sum(1 for line in handle if line.strip())
    summary = grade_batch(
        load_problems(args.problems),
        read_jsonl(args.generations),
        args.out,
        sandbox=kind,
        workers=args.workers,
        timeout_s=args.timeout_s,
        early_stop=args.early_stop,
        total=total,
    )
    rates = ", ".join(f"{key} {value:.4f}" for key, value in summary.items() if key.startswith("pass@"))
    print(
        f"graded {summary['problems']} problems ({kind}): {rates or 'no verdicts'}; infra errors "
        f"{summary['infra_errors']} -> {args.out}"
    )
    return 0
