"""Grading: one response (`grade`), a resumable batch (`grade_batch`) and pass@k.

Stdlib only at import time (the grader image has no typer/rich/pydantic); the progress bar
uses rich when it is installed.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from valley.cores import usable_cores
from valley.grader.extract import extract_code
from valley.grader.isolation import IsolationUnavailable, require_isolation, resolve_kind
from valley.grader.pool import POOL
from valley.grader.problem import Problem, from_lcb_row, from_taco_row
from valley.grader.session import ProgramEndedSandbox, SandboxError
from valley.grader.verdict import TestResult, Verdict, judge_test, program_status

INFRA_RETRIES = 2
# where a program's grading time goes, summed over its tests (docs/grader.md, "Where the time goes")
TIMING_STAGES = (
    "sandbox_start_s",
    "load_s",
    "slot_wait_s",
    "input_s",
    "fork_s",
    "program_wall_s",
    "program_cpu_s",
    "output_s",
    "compare_s",
    "end_s",
)


def grade(
    problem: Problem,
    response: str,
    *,
    sandbox: str = "auto",
    timeout_s: float | None = None,
    early_stop: bool = True,
    limits: dict | None = None,
) -> Verdict:
    """Extract the code from a raw response (reasoning dropped) and run it on every test."""
    code = extract_code(response)
    if not code.strip():
        return Verdict(
            "no_code",
            total_tests=len(problem.tests),
            sandbox=resolve_kind(sandbox),
            detail="no fenced code block after the reasoning",
        )
    return grade_code(problem, code, sandbox=sandbox, timeout_s=timeout_s, early_stop=early_stop, limits=limits)


def grade_code(
    problem: Problem,
    code: str,
    *,
    sandbox: str = "auto",
    timeout_s: float | None = None,
    early_stop: bool = True,
    limits: dict | None = None,
) -> Verdict:
    """Run already-extracted code; a sandbox failure is retried, then reported as `infra_error`.
    Only a missing isolation (IsolationUnavailable) stops the caller: never a program."""
    kind = resolve_kind(sandbox)
    error: Exception | None = None
    for _attempt in range(1 + INFRA_RETRIES):
        try:
            return _run(problem, code, kind, timeout_s or problem.timeout_s, early_stop, limits)
        except SandboxError as failure:
            error = failure
        except IsolationUnavailable:
            raise
        except Exception as failure:  # a grader bug: this program's row says so, the batch goes on
            error = RuntimeError(f"grader error {type(failure).__name__}: {failure}"[:1000])
            break
    return Verdict("infra_error", total_tests=len(problem.tests), sandbox=kind, detail=str(error))


def _run(problem: Problem, code: str, kind: str, timeout_s: float, early_stop: bool, limits: dict | None) -> Verdict:
    total = len(problem.tests)
    results: list[TestResult] = []
    timing = dict.fromkeys(TIMING_STAGES, 0.0)
    with POOL.session(kind) as (session, fresh):
        timing["sandbox_start_s"] = session.start_s if fresh else 0.0
        started = time.perf_counter()
        compile_error = session.load(code, problem.mode, problem.fn_name, limits)
        timing["load_s"] = time.perf_counter() - started
        if compile_error:
            results.append(TestResult(0, "compile_error", detail=compile_error))
        else:
            for index, test in enumerate(problem.tests):
                try:
                    raw = session.run(test.input, timeout_s)
                except ProgramEndedSandbox as ended:
                    results.append(
                        TestResult(index, "runtime_error", detail=f"the program ended its sandbox {ended}"[:500])
                    )
                    break
                compared = time.perf_counter()
                status, detail = judge_test(problem.judge, problem.mode, raw, test.output)
                timing["compare_s"] += time.perf_counter() - compared
                for stage, seconds in raw["stages"].items():
                    timing[stage] += seconds
                timing["program_wall_s"] += raw["time_s"]
                timing["program_cpu_s"] += raw.get("cpu_s") or 0.0
                results.append(
                    TestResult(
                        index,
                        status,
                        time_s=raw["time_s"],
                        cpu_s=raw.get("cpu_s"),
                        max_rss_kb=raw.get("max_rss_kb"),
                        detail=detail,
                    )
                )
                if status != "pass" and early_stop:
                    break
        ended = time.perf_counter()
    timing["end_s"] = time.perf_counter() - ended  # the pool empties the sandbox for the next program
    extra = {
        "sandbox_start_s": round(timing["sandbox_start_s"], 4),
        "timing": {k: round(v, 4) for k, v in timing.items()},
    }
    return Verdict(program_status(results, total), tuple(results), total, kind, extra=extra)


def cpu_needed_s(rows: Iterable[dict]) -> float:
    """The CPU time the tests of these verdict rows needed (their `cpu_s`)."""
    return sum(test.get("cpu_s") or 0.0 for row in rows for test in row["tests"])


def floor_s(rows: Iterable[dict], workers: int, cores: int | None = None) -> float:
    """The least wall time grading these verdict rows can take: the CPU time their tests needed,
    spread over the cores the workers can use (a worker runs one test at a time, so one core
    each; `cores` defaults to this process's usable cores)."""
    return cpu_needed_s(rows) / min(workers, cores or usable_cores())


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator 1 - C(n-c, k)/C(n, k) (Chen et al. 2021; LCB pass_k_utils)."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def score(rows: Iterable[dict], ks: Iterable[int] = (1,)) -> dict:
    """Mean pass@k over problems; infra errors are excluded (neither pass nor fail)."""
    per_problem: dict[str, list[bool]] = defaultdict(list)
    infra = 0
    for row in rows:
        if row["verdict"] == "infra_error":
            infra += 1
            continue
        per_problem[row["question_id"]].append(bool(row["passed"]))
    result: dict = {"problems": len(per_problem), "infra_errors": infra}
    for k in ks:
        eligible = [outcomes for outcomes in per_problem.values() if len(outcomes) >= k]
        if eligible:
            result[f"pass@{k}"] = sum(pass_at_k(len(o), sum(o), k) for o in eligible) / len(eligible)
    return result


# ---- files


def problem_from_row(row: dict, max_test_bytes: int | None = None) -> Problem:
    """An LCB row (dataset schema), a TACO row (`input_output` + `question_id`), or `Problem.to_dict()`;
    an LCB row's packed private tests inflate to at most `max_test_bytes`."""
    if "public_test_cases" in row:
        return from_lcb_row(row, max_test_bytes)
    if "input_output" in row:
        return from_taco_row(row, str(row["question_id"]))
    if "tests" in row:
        return Problem.from_dict(row)
    raise ValueError(
        f"problem row {row.get('question_id', '?')}: expected LCB columns (public_test_cases), TACO input_output, or "
        "tests"
    )


def read_jsonl(path: str | Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not JSON ({error.msg}); fix or remove that line") from error


def load_problems(path: str | Path) -> dict[str, Problem]:
    return {problem.question_id: problem for problem in map(problem_from_row, read_jsonl(path))}


def read_verdicts(path: str | Path) -> dict[tuple[str, str], dict]:
    """The last row per (question_id, sample_id): a resumed batch appends retried infra errors."""
    rows: dict[tuple[str, str], dict] = {}
    for row in _complete_rows(Path(path)):
        rows[(row["question_id"], str(row["sample_id"]))] = row
    return rows


def _complete_rows(path: Path) -> Iterator[dict]:
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.endswith("\n"):
                yield json.loads(line)


class VerdictFile:
    """An append-only verdict file that resumes: `done` holds the pairs already graded (infra
    errors excepted: they are graded again), `write` appends and fsyncs one row, thread-safe."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_partial_row(self.path)
        self.done = {key for key, row in read_verdicts(self.path).items() if row["verdict"] != "infra_error"}
        self._lock = threading.Lock()
        self._sink = None

    def __enter__(self) -> "VerdictFile":
        self._sink = open(self.path, "a", encoding="utf-8")
        return self

    def __exit__(self, *_exc) -> None:
        self._sink.close()

    def is_done(self, generation: dict) -> bool:
        return (str(generation["question_id"]), str(generation["sample_id"])) in self.done

    def write(self, rows: Iterable[dict]) -> None:
        with self._lock:
            self._sink.write("".join(json.dumps(row) + "\n" for row in rows))
            self._sink.flush()
            os.fsync(self._sink.fileno())


def _truncate_partial_row(path: Path) -> None:
    """An interrupted write leaves a line without its newline: cut it so the rerun redoes it."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


# ---- batches


def default_workers() -> int:
    return usable_cores()


def grade_batch(
    problems: Mapping[str, Problem] | Iterable[Problem],
    generations: Iterable[dict],
    out_path: str | Path,
    *,
    sandbox: str = "auto",
    workers: int | None = None,
    timeout_s: float | None = None,
    early_stop: bool = True,
    progress: bool = True,
    total: int | None = None,
) -> dict:
    """Grade `{"question_id","sample_id","response"}` rows into `out_path`, one JSON row each.

    Rows are appended and fsynced as they finish, so an interrupted batch resumes: pairs already
    in the file are skipped (except infra errors, which are retried). At most 2×workers
    generations are held in memory at a time. `total` (the number of generations, when
    `generations` is a stream) sizes the progress bar. Returns `score()` of the whole file.
    """
    if not isinstance(problems, Mapping):
        problems = {problem.question_id: problem for problem in problems}
    verdicts = VerdictFile(out_path)
    workers = workers or default_workers()
    kind = require_isolation(sandbox)
    if total is None and hasattr(generations, "__len__"):
        total = len(generations)

    def one(generation: dict) -> dict:
        problem = problems.get(str(generation["question_id"]))
        if problem is None:
            raise ValueError(
                f"generation {generation['question_id']}/{generation['sample_id']}: no problem with that question_id "
                "in the problems file"
            )
        verdict = grade(problem, generation["response"], sandbox=kind, timeout_s=timeout_s, early_stop=early_stop)
        return {"question_id": problem.question_id, "sample_id": generation["sample_id"], **verdict.to_dict()}

    with verdicts, _Progress(total, progress) as bar, ThreadPoolExecutor(workers) as pool:

        def write(row: dict) -> None:
            verdicts.write([row])
            bar.advance(row["passed"])

        pending = set()
        for generation in generations:
            if verdicts.is_done(generation):
                bar.advance(None)
                continue
            if len(pending) >= 2 * workers:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    write(future.result())
            pending.add(pool.submit(one, generation))
        for future in pending:
            write(future.result())
    return score(read_verdicts(verdicts.path).values())


class _Progress:
    """A rich progress bar on a terminal when rich is installed; silent otherwise."""

    def __init__(self, total: int | None, enabled: bool):
        self.total, self.passed, self.skipped = total, 0, 0
        self.bar = None
        if enabled and sys.stderr.isatty():
            try:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            except ImportError:
                return
            self.bar = Progress(
                TextColumn("grading"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeRemainingColumn(),
            )

    def __enter__(self) -> "_Progress":
        if self.bar:
            self.bar.start()
            self.task = self.bar.add_task("", total=self.total)
        return self

    def advance(self, passed: bool | None) -> None:
        if passed is None:
            self.skipped += 1
        elif passed:
            self.passed += 1
        if self.bar:
            self.bar.update(self.task, advance=1, description=f"passed {self.passed}, resumed {self.skipped}")

    def __exit__(self, *_exc) -> None:
        if self.bar:
            self.bar.stop()
