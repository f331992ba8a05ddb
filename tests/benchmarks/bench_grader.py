"""Grader throughput: programs/s under each sandbox against unsandboxed execution of the same
programs, measured in the same run, plus the cost of starting a sandbox.

    python tests/benchmarks/bench_grader.py [--programs 200] [--workers N]

Baselines (no isolation at all):
* in-process: LiveCodeBench's way: exec each program in a worker process with stdin/stdout
  swapped for strings (ProcessPoolExecutor, one task per program);
* subprocess: `python -I -c code` per test with the input on stdin (TACO's way), cold;
* fork server: a warm worker (prelude imported once) forks a child per test, as the harness
  does, but with no isolation at all: the fair baseline for a reused-sandbox grader.
Sandboxed: `grade_code` with warm sandboxes (one sandbox serves program after program) and cold
(a new sandbox per program). Programs that loop forever are left out: the baselines cannot
stop them without the machinery being measured. Goals: runsc >= 0.5x the cold subprocess baseline, >= 0.7x the warm fork server.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.valley.grader.corpus import build_corpus  # noqa: E402
from valley.grader.extract import extract_code  # noqa: E402
from valley.grader.grading import default_workers, grade_code  # noqa: E402
from valley.grader.harness import LCB_PRELUDE  # noqa: E402
from valley.grader.problem import Problem, from_lcb_row  # noqa: E402
from valley.grader.sandbox import POOL, Session, interpreter, resolve_kind  # noqa: E402
from valley.grader.verdict import lcb_stdout_matches, lcb_value_matches  # noqa: E402

SLOW = {"timeout", "quadratic"}


def workload(limit: int) -> list[tuple[dict, str]]:
    rows, generations, expected = build_corpus()
    problems = {row["question_id"]: from_lcb_row(row).to_dict() for row in rows}
    verdict = {(e["question_id"], e["sample_id"]): e["verdict"] for e in expected}
    programs = []
    for generation in generations:
        code = extract_code(generation["response"])
        if code and generation["sample_id"] not in SLOW and verdict[(generation["question_id"], generation["sample_id"])] != "timeout":
            programs.append((problems[generation["question_id"]], code))
    step = max(1, len(programs) // limit)
    return programs[::step][:limit]


def in_process(job: tuple[dict, str]) -> bool:
    """LCB-style: exec in this process, stdin/stdout swapped for strings, stop at first failure."""
    problem, code = job
    sys.setrecursionlimit(50000)
    for test_input, expected in problem["tests"]:
        namespace = {"__name__": "__main__" if not problem["fn_name"] else "solution"}
        stdout = io.StringIO()
        try:
            with contextlib.redirect_stdout(stdout):
                sys.stdin = io.TextIOWrapper(io.BytesIO(test_input.encode()))
                exec(LCB_PRELUDE + code, namespace)
                if problem["fn_name"]:
                    target = namespace["Solution"]() if "Solution" in namespace else None
                    method = getattr(target, problem["fn_name"]) if target else namespace[problem["fn_name"]]
                    ok = lcb_value_matches(method(*[json.loads(line) for line in test_input.split("\n")]), expected)
            if not problem["fn_name"]:
                ok = lcb_stdout_matches(stdout.getvalue(), expected)
        except SystemExit as exit_:
            ok = exit_.code in (None, 0) and not problem["fn_name"] and lcb_stdout_matches(stdout.getvalue(), expected)
        except BaseException:
            ok = False
        if not ok:
            return False
    return True


def via_subprocess(job: tuple[dict, str]) -> bool:
    problem, code = job
    if problem["fn_name"]:
        call = f"\nimport json as _j, sys as _s\n_a=[_j.loads(l) for l in _s.stdin.read().split(chr(10))]\n_t=Solution() if 'Solution' in globals() else None\n_m=getattr(_t,{problem['fn_name']!r}) if _t else globals()[{problem['fn_name']!r}]\n_r=_m(*_a)\nprint(_j.dumps(list(_r) if isinstance(_r, tuple) else _r))\n"
        code = code + call
    for test_input, expected in problem["tests"]:
        result = subprocess.run([interpreter(), "-I", "-c", LCB_PRELUDE + code], input=test_input, capture_output=True, text=True, timeout=30)
        if problem["fn_name"]:
            try:  # the value is the last line; a program's own prints come before it
                ok = result.returncode == 0 and lcb_value_matches(json.loads(result.stdout.strip().split("\n")[-1]), expected)
            except json.JSONDecodeError:
                ok = False
        else:
            ok = result.returncode == 0 and lcb_stdout_matches(result.stdout, expected)
        if not ok:
            return False
    return True


def _fork_test(problem: dict, code, test_input: str, expected: str) -> bool:
    """One test in a forked child of this warm worker: stdin and stdout are anonymous files."""
    import os
    import tempfile

    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout:
        stdin.write(test_input.encode())
        stdin.seek(0)
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.dup2(stdin.fileno(), 0)
                os.dup2(stdout.fileno(), 1)
                sys.stdin = open(0, "r", closefd=False)
                sys.stdout = open(1, "w", closefd=False)
                namespace = {"__name__": "__main__" if not problem["fn_name"] else "solution"}
                exec(code, namespace)
                if problem["fn_name"]:
                    target = namespace["Solution"]() if "Solution" in namespace else None
                    method = getattr(target, problem["fn_name"]) if target else namespace[problem["fn_name"]]
                    value = method(*[json.loads(line) for line in test_input.split("\n")])
                    sys.stdout.write("\n" + json.dumps(list(value) if isinstance(value, tuple) else value))
                status = 0
            except SystemExit as exit_:
                status = exit_.code if isinstance(exit_.code, int) else 0
            except BaseException:
                status = 1
            finally:
                sys.stdout.flush()
                os._exit(status)
        _pid, status = os.waitpid(pid, 0)
        stdout.seek(0)
        output = stdout.read().decode(errors="replace")
    if status != 0:
        return False
    if problem["fn_name"]:
        try:
            return lcb_value_matches(json.loads(output.rsplit("\n", 1)[-1]), expected)
        except json.JSONDecodeError:
            return False
    return lcb_stdout_matches(output, expected)


def fork_server(job: tuple[dict, str]) -> bool:
    """Warm and unsandboxed: this worker process imported the prelude once (first call) and
    forks a child per test, stopping at the first failure."""
    problem, code = job
    if not getattr(fork_server, "warm", False):
        exec(LCB_PRELUDE, {})
        fork_server.warm = True
    try:
        compiled = compile(LCB_PRELUDE + code, "solution.py", "exec")
    except (SyntaxError, ValueError):
        return False
    return all(_fork_test(problem, compiled, test_input, expected) for test_input, expected in problem["tests"])


def sandboxed(kind: str):
    def run(job: tuple[dict, str]) -> bool:
        problem, code = job
        return grade_code(Problem.from_dict(problem), code, sandbox=kind).passed

    return run


def throughput(label: str, run, jobs, workers: int, processes: bool = False) -> float:
    executor = ProcessPoolExecutor(workers) if processes else ThreadPoolExecutor(workers)
    with executor:
        list(executor.map(run, jobs[:workers]))  # warm-up: imports, pool start, first sandboxes
        started = time.perf_counter()
        passed = sum(executor.map(run, jobs))
        elapsed = time.perf_counter() - started
    rate = len(jobs) / elapsed
    print(f"  {label:<34} {rate:8.1f} programs/s  ({len(jobs)} programs, {passed} passed, {elapsed:.1f} s)")
    return rate


def start_cost(kind: str, samples: int) -> float:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        Session(kind).start().close()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--start-samples", type=int, default=10)
    args = parser.parse_args()
    jobs = workload(args.programs)
    tests = sum(len(problem["tests"]) for problem, _ in jobs)
    print(f"grader benchmark: {len(jobs)} programs, {tests} tests, {args.workers} workers")
    rates = {
        "in-process (LCB style, unsandboxed)": throughput("in-process (LCB style, unsandboxed)", in_process, jobs, args.workers, processes=True),
        "subprocess (unsandboxed)": throughput("subprocess (unsandboxed)", via_subprocess, jobs, args.workers),
        "fork server (warm, unsandboxed)": throughput("fork server (warm, unsandboxed)", fork_server, jobs, args.workers, processes=True),
    }
    kinds = ["process"] + (["runsc"] if resolve_kind("auto") == "runsc" else [])
    for kind in kinds:
        rates[f"{kind} warm"] = throughput(f"{kind} sandbox, warm (reused)", sandboxed(kind), jobs, args.workers)
        POOL.close_all()
        POOL.max_programs = 1  # a fresh sandbox for every program
        rates[f"{kind} cold"] = throughput(f"{kind} sandbox, cold (one per program)", sandboxed(kind), jobs, args.workers)
        POOL.close_all()
        POOL.max_programs = 64
    print("ratios (sandboxed / unsandboxed):")
    for kind in kinds:
        for mode in ("warm", "cold"):
            rate = rates[f"{kind} {mode}"]
            print(f"  {kind} {mode}: {rate / rates['subprocess (unsandboxed)']:.2f}x subprocess (cold), "
                  f"{rate / rates['fork server (warm, unsandboxed)']:.2f}x fork server (warm), "
                  f"{rate / rates['in-process (LCB style, unsandboxed)']:.2f}x in-process")
    print(f"sandbox start (median of {args.start_samples}):")
    for kind in kinds:
        print(f"  {kind}: {start_cost(kind, args.start_samples) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
