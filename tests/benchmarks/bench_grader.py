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
stop them without the machinery being measured. Goals: runsc >= 0.5x the cold subprocess
baseline, >= 0.7x the warm fork server.

LCB-like section (tests/valley/grader/lcb_like.py: inputs up to 2*10^5 numbers, stdin and
functional, slow-but-correct programs, programs that loop on large tests): an lcb_runner-style
baseline (our own code with its execution model: a pool of 12 processes, a Manager and a Process
per generation, tests exec'd in that process with stdin swapped, a per-test SIGALRM wall-clock
timeout, a global (timeout+1)*tests+5 s join) against `grade_batch` at each --lcb-workers, in one
table: programs/s, verdicts right (the corpus knows each program's verdict), agreement with the
baseline, wall time against the floor (`floor_s`: the CPU seconds the verdict rows record / the
cores the workers can use, min(workers, cores)), the CPU the grader and its sandboxes used
against that, what the run left idle and what other processes on the machine took meanwhile
(so a figure from a shared machine can be read), and per program where the time goes.
`--only lcb` runs that section alone.

Hostile-output section (`--only hostile`, tests/valley/grader/hostile_outputs.py): what outputs a
program chose to make expensive cost the grader itself (a fresh grader process each, after a
warm-up program): its CPU seconds and peak memory growth, per MiB of output, and the verdict.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.valley.grader import lcb_like  # noqa: E402
from tests.valley.grader.corpus import build_corpus  # noqa: E402
from tests.valley.grader.hostile_outputs import CASES as HOSTILE_OUTPUTS  # noqa: E402
from tests.valley.grader.hostile_outputs import grader_cost  # noqa: E402
from valley.cores import usable_cores  # noqa: E402
from valley.grader.cpu import CpuCgroup, tree_usage  # noqa: E402
from valley.grader.extract import extract_code  # noqa: E402
from valley.grader.grading import (
    TIMING_STAGES,
    cpu_needed_s,
    default_workers,
    floor_s,
    grade_batch,
    grade_code,
    read_verdicts,
)  # noqa: E402
from valley.grader.harness import CLOCK_TICKS, LCB_PRELUDE  # noqa: E402
from valley.grader.isolation import resolve_kind  # noqa: E402
from valley.grader.launch import interpreter  # noqa: E402
from valley.grader.pool import POOL  # noqa: E402
from valley.grader.problem import Problem, from_lcb_row  # noqa: E402
from valley.grader.session import Session  # noqa: E402
from valley.grader.verdict import lcb_stdout_matches, lcb_value_matches  # noqa: E402

SLOW = {"timeout", "quadratic"}


def workload(limit: int) -> list[tuple[dict, str]]:
    rows, generations, expected = build_corpus()
    problems = {row["question_id"]: from_lcb_row(row).to_dict() for row in rows}
    verdict = {(e["question_id"], e["sample_id"]): e["verdict"] for e in expected}
    programs = []
    for generation in generations:
        code = extract_code(generation["response"])
        if (
            code
            and generation["sample_id"] not in SLOW
            and verdict[(generation["question_id"], generation["sample_id"])] != "timeout"
        ):
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
        call = (
            "\nimport json as _j, sys as _s\n_a=[_j.loads(l) for l in _s.stdin.read().split(chr(10))]\n"
            "_t=Solution() if 'Solution' in globals() else None\n"
            f"_m=getattr(_t,{problem['fn_name']!r}) if _t else globals()[{problem['fn_name']!r}]\n_r=_m(*_a)\n"
            "print(_j.dumps(list(_r) if isinstance(_r, tuple) else _r))\n"
        )
        code = code + call
    for test_input, expected in problem["tests"]:
        result = subprocess.run(
            [interpreter(), "-I", "-c", LCB_PRELUDE + code],
            input=test_input,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if problem["fn_name"]:
            try:  # the value is the last line; a program's own prints come before it
                ok = result.returncode == 0 and lcb_value_matches(
                    json.loads(result.stdout.strip().split("\n")[-1]), expected
                )
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


# ---- LiveCodeBench-like corpus: an lcb_runner-style baseline against valley grade


class _Alarm(Exception):
    pass


def _on_alarm(_signum, _frame):
    raise _Alarm()


def _lcb_tests(problem: dict, code: str, timeout_s: float, results) -> None:
    """In the per-generation Process, LCB's way: exec in this process, stop at the first failure."""
    signal.signal(signal.SIGALRM, _on_alarm)
    sys.setrecursionlimit(50000)
    try:
        compiled = compile(LCB_PRELUDE + code, "<solution>", "exec")
    except Exception:
        results.append("compile_error")
        return
    verdict = "pass"
    for test_input, expected in problem["tests"]:
        namespace = {"__name__": "__main__" if not problem["fn_name"] else "solution"}
        stdout = io.StringIO()
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            with contextlib.redirect_stdout(stdout):
                sys.stdin = io.TextIOWrapper(io.BytesIO(test_input.encode()))
                exec(compiled, namespace)
                if problem["fn_name"]:
                    target = namespace["Solution"]() if "Solution" in namespace else None
                    method = getattr(target, problem["fn_name"]) if target else namespace[problem["fn_name"]]
                    value = method(*[json.loads(line) for line in test_input.split("\n")])
            signal.setitimer(signal.ITIMER_REAL, 0)
            ok = (
                lcb_value_matches(value, expected)
                if problem["fn_name"]
                else lcb_stdout_matches(stdout.getvalue(), expected)
            )
            status = "pass" if ok else "wrong_answer"
        except _Alarm:
            status = "timeout"
        except SystemExit:
            signal.setitimer(signal.ITIMER_REAL, 0)
            status = (
                "pass"
                if not problem["fn_name"] and lcb_stdout_matches(stdout.getvalue(), expected)
                else "runtime_error"
            )
        except BaseException:
            signal.setitimer(signal.ITIMER_REAL, 0)
            status = "runtime_error"
        if status != "pass":
            verdict = status
            break
    results.append(verdict)


def _lcb_generation(job: tuple[dict, str, float]) -> str:
    """One task of the pool: a Manager and a Process per generation, as lcb_runner does."""
    problem, code, timeout_s = job
    with multiprocessing.Manager() as manager:
        results = manager.list()
        process = multiprocessing.Process(target=_lcb_tests, args=(problem, code, timeout_s, results))
        process.start()
        process.join(timeout=(timeout_s + 1) * len(problem["tests"]) + 5)
        if process.is_alive():
            process.kill()
            process.join()
        return results[0] if results else "timeout"


def cpu_used() -> float:
    """CPU seconds of this process, its reaped children and its live descendants."""
    return tree_usage(os.getpid())[0] / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the whole machine has been busy and idle since boot (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as handle:
        ticks = [int(value) for value in handle.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / CLOCK_TICKS, idle / CLOCK_TICKS


def grader_cpu(kind: str) -> float | None:
    """CPU seconds of this process and the sandboxes it closed: runsc sandboxes from their
    cgroups (runsc's own processes are not reaped into ours), others as reaped children.
    None for runsc without cgroups."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    if kind == "runsc":
        sandboxes = CpuCgroup.removed_cpu_s if CpuCgroup.removed_cpu_s or os.geteuid() == 0 else None
    else:
        sandboxes = children.ru_utime + children.ru_stime
    return None if sandboxes is None else own.ru_utime + own.ru_stime + sandboxes


def lcb_runner_style(jobs: list[tuple[dict, str]], processes: int, timeout_s: float) -> tuple[list[str], float, float]:
    started, cpu = time.perf_counter(), cpu_used()
    with ProcessPoolExecutor(processes) as pool:
        verdicts = list(pool.map(_lcb_generation, [(problem, code, timeout_s) for problem, code in jobs]))
    return verdicts, time.perf_counter() - started, cpu_used() - cpu


def valley_grade(rows: list[dict], generations: list[dict], kind: str, workers: int, timeout_s: float) -> dict:
    """Verdicts, wall seconds, and the CPU seconds the grader and its sandboxes used, the whole
    machine used (busy) and left idle during the batch (closing the warm sandboxes included)."""
    problems = {problem.question_id: problem for problem in map(from_lcb_row, rows)}
    POOL.close_all()
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "verdicts.jsonl"
        used, (busy, idle) = grader_cpu(kind), machine_cpu()
        started = time.perf_counter()
        grade_batch(problems, generations, out, sandbox=kind, workers=workers, timeout_s=timeout_s, progress=False)
        elapsed = time.perf_counter() - started
        POOL.close_all()
        after, (busy_after, idle_after) = grader_cpu(kind), machine_cpu()
        return {
            "verdicts": read_verdicts(out),
            "wall_s": elapsed,
            "used_s": None if after is None else after - used,
            "busy_s": busy_after - busy,
            "idle_s": idle_after - idle,
        }


def cpu_time_spread(samples: int = 40) -> str:
    """How much the CPU time of the same work varies on this machine right now: a program needing
    half the limit at the fastest moment may need all of it at the slowest, whatever the grader."""
    times = []
    for _ in range(samples):
        started = time.process_time()
        lcb_like._spin(1_000_000)
        times.append(time.process_time() - started)
        time.sleep(0.05)
    low, median, high = min(times), statistics.median(times), max(times)
    return (
        f"the same CPU work took {low * 1e3:.1f} / {median * 1e3:.1f} / {high * 1e3:.1f} ms of CPU (min / median / "
        "max of "
        f"{samples}, max/min {high / low:.2f})"
    )


def last_test(row: dict) -> str:
    """The test that decided a verdict: what a misjudgment needs explained (CPU or wall-clock guard)."""
    if not row.get("tests"):
        return row.get("detail", "")[:120]
    test = row["tests"][-1]
    detail = test.get("detail", "")[:120]
    return f"test {test['index']}: cpu {test.get('cpu_s')} s, wall {test.get('time_s')} s, {detail!r}"


def lcb_like_section(args) -> None:
    mix = {
        "slow_correct": args.lcb_slow,
        "wrong_on_large": 0.15,
        "crash_on_large": 0.05,
        "loop_on_large": args.lcb_timeouts,
    }
    rows, generations, expected = lcb_like.build(
        problems=args.lcb_problems,
        samples=args.lcb_samples,
        max_numbers=args.lcb_max_numbers,
        timeout_s=args.lcb_timeout_s,
        mix=mix,
    )
    want = [e["verdict"] for e in expected]
    problems = {row["question_id"]: from_lcb_row(row).to_dict() for row in rows}
    jobs = [(problems[g["question_id"]], extract_code(g["response"])) for g in generations]
    cores = usable_cores()
    with open("/proc/loadavg", encoding="ascii") as handle:
        load = handle.read().split()[0]
    print(
        f"LCB-like corpus: {len(jobs)} programs {dict(Counter(want))}, {len(rows)} problems, inputs up to "
        f"{args.lcb_max_numbers} numbers, {args.lcb_timeout_s:g} s limit, {cores} cores, load average {load} at start"
    )
    print(f"  CPU speed: {cpu_time_spread()}")
    baseline, baseline_s, baseline_cpu = lcb_runner_style(jobs, args.lcb_processes, args.lcb_timeout_s)
    base_rate = len(jobs) / baseline_s
    print(
        f"  {'grader':<46} {'programs/s':>10} {'x lcb':>6} {'right':>9} {'agree':>9} {'wall s':>7} {'floor s':>7} "
        f"{'wall/floor':>10} {'used/needed':>11} {'idle core-s':>11} {'others s':>8}"
    )
    print(
        f"  {f'lcb_runner-style ({args.lcb_processes} processes, wall timeout)':<46} {base_rate:10.2f} {1:6.2f} "
        f"{sum(b == w for b, w in zip(baseline, want, strict=True)):>4}/{len(want):<4} {'-':>9} {baseline_s:7.1f} "
        f"{'-':>7} {'-':>10} "
        f"{f'{baseline_cpu:.1f} s':>11} {'-':>11} {'-':>8}"
    )
    stage_rows = []
    for kind in args.lcb_sandboxes.split(","):
        for workers in map(int, args.lcb_workers.split(",")):
            run = valley_grade(rows, generations, kind, workers, args.lcb_timeout_s)
            got = [run["verdicts"][(g["question_id"], g["sample_id"])] for g in generations]
            needed = cpu_needed_s(got)
            floor, elapsed = floor_s(got, workers, cores), run["wall_s"]
            used = "-" if run["used_s"] is None else f"{run['used_s'] / needed:.2f}"
            others = "-" if run["used_s"] is None else f"{run['busy_s'] - run['used_s']:.1f}"
            right = sum(row["verdict"] == w for row, w in zip(got, want, strict=True))
            agree = sum(row["verdict"] == b for row, b in zip(got, baseline, strict=True))
            rate = len(jobs) / elapsed
            print(
                f"  {f'valley {kind} --workers {workers}':<46} {rate:10.2f} {rate / base_rate:6.2f} "
                f"{right:>4}/{len(want):<4} "
                f"{agree:>4}/{len(want):<4} {elapsed:7.1f} {floor:7.1f} {elapsed / floor:10.2f} {used:>11} "
                f"{run['idle_s']:11.1f} {others:>8}"
            )
            totals: Counter = Counter()
            for row in got:
                totals.update(row.get("timing", {}))
            stage_rows.append((f"{kind} --workers {workers}", {k: totals[k] / len(got) * 1000 for k in TIMING_STAGES}))
            for generation, w, row in zip(generations, want, got, strict=True):
                if w != row["verdict"]:
                    print(
                        f"    misjudged {generation['question_id']}/{generation['sample_id']}: {w} -> "
                        f"{row['verdict']}, {last_test(row)}"
                    )
    misjudged = Counter((w, b) for w, b in zip(want, baseline, strict=True) if w != b)
    if misjudged:
        print(f"  lcb_runner-style misjudged (right, given): {dict(misjudged)}")
    print(
        "  floor: the CPU seconds the verdict rows record (needed) / min(workers, cores); used: the CPU of this "
        "process and"
    )
    print(
        "  its sandboxes (the baseline: its CPU seconds); idle core-s: CPU time nothing on the machine used during "
        "the run;"
    )
    print("  others s: CPU other processes on the machine took meanwhile (not 0: the wall figures are pessimistic).")
    print("  With workers >= cores: wall/floor = (used + idle core-s + others s) / needed.")
    print("  where the time goes, ms per program (mean; the floor counts program_cpu):")
    print("  " + f"{'':<20}" + "".join(f"{k.removesuffix('_s'):>16}" for k in TIMING_STAGES))
    for label, stages in stage_rows:
        print("  " + f"{label:<20}" + "".join(f"{stages[k]:16.1f}" for k in TIMING_STAGES))


def hostile_section() -> None:
    print("what a hostile output costs the grader (its own CPU and peak memory growth; process sandbox):")
    print(f"  {'output':<42}{'MiB':>6}{'verdict':>16}{'CPU s':>8}{'CPU s/MiB':>11}{'RSS MiB':>9}{'RSS/MiB':>9}")
    for name, (functional, code, size_mb) in HOSTILE_OUTPUTS.items():
        for judge in ("lcb",) if functional else ("lcb", "taco"):
            cost = grader_cost(functional, code, judge)
            label = name if functional else f"{name} ({judge})"
            if cost.get("cpu_s") is None:
                print(f"  {label:<42}{size_mb:>6.1f}  {cost['status']}")
                continue
            print(
                f"  {label:<42}{size_mb:>6.1f}{cost['status']:>16}{cost['cpu_s']:>8.2f}{cost['cpu_s'] / size_mb:>11.3f}"
                f"{cost['rss_growth_mb']:>9.0f}{cost['rss_growth_mb'] / size_mb:>9.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--start-samples", type=int, default=10)
    parser.add_argument("--only", choices=["classic", "lcb", "hostile"], help="run one section only")
    parser.add_argument("--lcb-problems", type=int, default=16)
    parser.add_argument("--lcb-samples", type=int, default=10, help="generations per problem")
    parser.add_argument("--lcb-max-numbers", type=int, default=200_000)
    parser.add_argument("--lcb-timeout-s", type=float, default=6.0)
    parser.add_argument("--lcb-timeouts", type=float, default=0.02, help="share of programs that loop on large tests")
    parser.add_argument("--lcb-slow", type=float, default=0.1, help="share of slow-but-correct programs")
    parser.add_argument("--lcb-processes", type=int, default=12, help="the baseline's pool (lcb_runner's CLI default)")
    parser.add_argument("--lcb-workers", default="2,16", help="valley grade --workers values to measure")
    parser.add_argument("--lcb-sandboxes", default="runsc", help="comma-separated sandbox kinds")
    args = parser.parse_args()
    if args.only in (None, "hostile"):
        hostile_section()
    if args.only in (None, "lcb"):
        lcb_like_section(args)
    if args.only in ("lcb", "hostile"):
        return
    jobs = workload(args.programs)
    tests = sum(len(problem["tests"]) for problem, _ in jobs)
    print(f"grader benchmark: {len(jobs)} programs, {tests} tests, {args.workers} workers")
    rates = {
        "in-process (LCB style, unsandboxed)": throughput(
            "in-process (LCB style, unsandboxed)", in_process, jobs, args.workers, processes=True
        ),
        "subprocess (unsandboxed)": throughput("subprocess (unsandboxed)", via_subprocess, jobs, args.workers),
        "fork server (warm, unsandboxed)": throughput(
            "fork server (warm, unsandboxed)", fork_server, jobs, args.workers, processes=True
        ),
    }
    kinds = ["process"] + (["runsc"] if resolve_kind("auto") == "runsc" else [])
    for kind in kinds:
        rates[f"{kind} warm"] = throughput(f"{kind} sandbox, warm (reused)", sandboxed(kind), jobs, args.workers)
        POOL.close_all()
        POOL.max_programs = 1  # a fresh sandbox for every program
        rates[f"{kind} cold"] = throughput(
            f"{kind} sandbox, cold (one per program)", sandboxed(kind), jobs, args.workers
        )
        POOL.close_all()
        POOL.max_programs = 64
    print("ratios (sandboxed / unsandboxed):")
    for kind in kinds:
        for mode in ("warm", "cold"):
            rate = rates[f"{kind} {mode}"]
            print(
                f"  {kind} {mode}: {rate / rates['subprocess (unsandboxed)']:.2f}x subprocess (cold), "
                f"{rate / rates['fork server (warm, unsandboxed)']:.2f}x fork server (warm), "
                f"{rate / rates['in-process (LCB style, unsandboxed)']:.2f}x in-process"
            )
    print(f"sandbox start (median of {args.start_samples}):")
    for kind in kinds:
        print(f"  {kind}: {start_cost(kind, args.start_samples) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
