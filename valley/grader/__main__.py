"""`python -m valley.grader serve|grade`: the grader image's entrypoint, stdlib only (argparse)."""

from __future__ import annotations

import argparse
import sys

from valley.grader.sandbox import SANDBOX_KINDS, IsolationUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m valley.grader", description="valley grader (stdlib entrypoint)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve GET /healthz and POST /grade")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--sandbox", default="auto", choices=SANDBOX_KINDS)
    serve.add_argument("--workers", type=int, default=None)
    serve.add_argument("--max-pending", type=int, default=8)
    serve.add_argument("--max-request-mb", type=int, default=256)
    grade = commands.add_parser("grade", help="grade a generations file")
    grade.add_argument("--problems", required=True)
    grade.add_argument("--generations", required=True)
    grade.add_argument("--out", required=True)
    grade.add_argument("--sandbox", default="auto", choices=SANDBOX_KINDS)
    grade.add_argument("--workers", type=int, default=None)
    grade.add_argument("--timeout-s", type=float, default=None, help="per-test timeout [default: the problem's]")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except IsolationUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        from valley.grader.server import serve as run_server

        run_server(
            args.host,
            args.port,
            sandbox=args.sandbox,
            workers=args.workers,
            max_pending=args.max_pending,
            max_request_mb=args.max_request_mb,
        )
        return 0
    from valley.grader.grading import grade_batch, load_problems, read_jsonl

    try:
        summary = grade_batch(
            load_problems(args.problems),
            read_jsonl(args.generations),
            args.out,
            sandbox=args.sandbox,
            workers=args.workers,
            timeout_s=args.timeout_s,
        )
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
