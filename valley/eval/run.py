"""`valley eval`: one student on LiveCodeBench, top to bottom.

problems (release + contest-date window) -> prompts (LCB format, the student's chat template,
budget check before any generation) -> generations (vLLM, resumable) -> verdicts (grader
in-process, or the sidecar over HTTP) -> metrics -> the eval's own MLflow run, a child of the attached one.
Every stage writes into EVAL_DIR, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from valley.chat import template_hash
from valley.eval.generate import generate
from valley.eval.metrics import eval_metrics, per_problem_table
from valley.eval.prompts import render_prompts
from valley.eval.record import eval_tags, record_eval
from valley.spec import RunSpec
from valley.tracking import stage_run
from valley.vocabulary import EVAL_KIND

VERDICTS = "verdicts.jsonl"


def evaluate(
    run_spec: RunSpec,
    model_dir: Path,
    out_dir: Path,
    *,
    lcb_path: Path | None = None,
    grader_url: str | None = None,
    allow_infra_errors: int = 0,
    llm=None,
) -> dict[str, float]:
    """Evaluate `model_dir` as `run_spec` says; returns the metrics it logged. More than
    `allow_infra_errors` programs the grader could not run stop it before anything is logged."""
    from transformers import AutoTokenizer

    spec = run_spec.eval
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    with stage_run(EVAL_KIND) as run:  # `<label>/eval`: its duration and system metrics are this work's
        problems = load_problems(run_spec, lcb_path)
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        prompts = render_prompts(problems, tokenizer, spec.max_model_len, spec.prompt_style)
        started = time.perf_counter()
        generations = [asdict(g) for g in generate(prompts, Path(model_dir), spec, out_dir, llm=llm)]
        generated = time.perf_counter()
        verdicts = grade(problems, generations, out_dir / VERDICTS, run_spec, grader_url)
        graded = time.perf_counter()
        metrics = eval_metrics(problems, generations, verdicts, seed=spec.seed)
        # this invocation's wall time per stage (engine start included; ~0 when resumed from files)
        metrics |= {"generation_seconds": generated - started, "grading_seconds": graded - generated}
        check_infra_errors(metrics, allow_infra_errors)

        engine_seeds = [spec.seed + rank for rank in range(spec.data_parallel_size)]
        tags = eval_tags(
            run_spec, chat_template_hash=template_hash(tokenizer.chat_template or ""), engine_seeds=engine_seeds
        )
        record_eval(run, metrics, tags, out_dir, per_problem_table(problems, generations, verdicts))
    return metrics


def load_problems(run_spec: RunSpec, lcb_path: Path | None) -> list[dict]:
    from valley.data.lcb import load_lcb_problems

    problems = load_lcb_problems(run_spec.eval, path=lcb_path)
    if not problems:
        spec = run_spec.eval
        from valley.errors import ValleyError

        raise ValleyError(
            f"eval.date_start/date_end: no {spec.lcb_release} problems between "
            f"{spec.date_start} and {spec.date_end}; widen the window"
        )
    return problems


def grade(
    problems: list[dict], generations: list[dict], out_path: Path, run_spec: RunSpec, grader_url: str | None
) -> list[dict]:
    """Verdict rows, one per generation, written to `out_path`.

    In a pod the grader sidecar (gVisor) does the work over HTTP; locally the grader library
    runs in-process with its best available sandbox.
    """
    from valley.errors import ValleyError
    from valley.grader.grading import read_verdicts
    from valley.grader.isolation import IsolationUnavailable, refuse_unsafe_on_cluster

    try:
        if grader_url:
            from valley.grader.client import GraderUnavailable, grade_remote, health

            sidecar = health(grader_url)
            if sidecar is None:
                raise ValleyError(f"--grader-url: no grader answers GET {grader_url}/healthz; start it or fix the URL")
            refuse_unsafe_on_cluster(sidecar.get("sandbox", ""), f"--grader-url {grader_url}")
            try:
                grade_remote(grader_url, problems, generations, out_path, test_timeout_s=run_spec.eval.grader_timeout_s)
            except GraderUnavailable as error:
                raise ValleyError(f"--grader-url: {error}; rerun to resume (verdicts so far are kept)") from None
        else:
            from valley.grader.grading import grade_batch
            from valley.grader.problem import from_lcb_row

            grade_batch(
                [from_lcb_row(row) for row in problems],
                generations,
                out_path,
                sandbox="auto",
                timeout_s=run_spec.eval.grader_timeout_s,
            )
    except IsolationUnavailable as error:
        raise IsolationUnavailable(f"grader: {error}") from None
    return list(read_verdicts(out_path).values())


def check_infra_errors(metrics: dict[str, float], allowed: int) -> None:
    """Programs the grader could not run leave pass@1's denominator: fail loudly unless the
    caller accepted that many."""
    from valley.errors import ValleyError

    excluded = int(metrics["infra_failures"])
    if excluded > allowed:
        raise ValleyError(
            f"grading: {excluded} programs ({int(metrics['infra_problems_excluded'])} problems entirely) were not "
            "graded "
            "(infra_error) and would leave pass@1; rerun to retry them, fix the grader, or pass "
            f"--allow-infra-errors {excluded}"
        )
