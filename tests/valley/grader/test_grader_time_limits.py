"""Time limits judge the program's CPU time, so a verdict does not depend on how many programs
are graded beside it: the same seeded corpus, with slow-but-correct programs near the limit,
gets the same verdicts at --workers 1, 2 and 16 through the real `valley grade` CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import require_tool
from tests.valley.grader import lcb_like
from valley.grader.grading import floor_s, read_jsonl, read_verdicts

LIMIT_S = 1.0
SLEEPER = "```python\nimport time\ntime.sleep(60)\nprint(1)\n```"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # slow programs spend ~40% of the limit on the largest test: 16 of them at once on 2 cores
    # would take several times the limit of wall time
    paths = lcb_like.write(
        tmp_path_factory.mktemp("lcb-like"),
        problems=4,
        max_numbers=20_000,
        tests=3,
        timeout_s=LIMIT_S,
        slow_fraction=0.4,
        kinds=("correct", "slow_correct", "slow_correct", "loop_on_large"),
    )
    with open(paths["generations"], "a") as generations, open(paths["expected"], "a") as expected:
        generations.write(json.dumps({"question_id": "sum0", "sample_id": "sleeper", "response": SLEEPER}) + "\n")
        expected.write(json.dumps({"question_id": "sum0", "sample_id": "sleeper", "verdict": "timeout"}) + "\n")
    return paths


@pytest.mark.slow
@pytest.mark.parametrize(
    "sandbox,workers", [("process", (1, 2, 16)), pytest.param("runsc", (2, 16), marks=pytest.mark.runsc)]
)
def test_verdicts_do_not_depend_on_the_number_of_workers(valley, corpus, tmp_path, sandbox, workers):
    if sandbox == "runsc":
        require_tool("runsc", "apt-get install -y runsc")
    expected = {(e["question_id"], e["sample_id"]): e["verdict"] for e in read_jsonl(corpus["expected"])}
    for count in workers:
        out = tmp_path / f"verdicts-{count}.jsonl"
        valley(
            [
                "grade",
                "--problems",
                corpus["problems"],
                "--generations",
                corpus["generations"],
                "--out",
                out,
                "--sandbox",
                sandbox,
                "--workers",
                count,
                "--timeout-s",
                LIMIT_S,
            ]
        )
        rows = read_verdicts(out)
        got = {key: row["verdict"] for key, row in rows.items()}
        assert got == expected, (
            count,
            {k: (v, got[k], rows[k]["tests"][-1]) for k, v in expected.items() if got[k] != v},
        )
        for key, row in rows.items():
            assert all(t["time_s"] > 0 and t["cpu_s"] >= 0 for t in row["tests"] if t["status"] != "compile_error"), row
            if "slow_correct" in key[1]:  # they really are near the limit
                assert max(t["cpu_s"] for t in row["tests"]) > 0.3 * LIMIT_S, row
            if "loop_on_large" in key[1]:
                assert row["tests"][-1]["cpu_s"] >= 0.9 * LIMIT_S and "CPU time limit" in row["tests"][-1]["detail"], (
                    row
                )
        sleeper = rows[("sum0", "sleeper")]["tests"][0]
        assert (
            "wall-clock guard" in sleeper["detail"]
            and sleeper["cpu_s"] < 0.5 * LIMIT_S
            and sleeper["time_s"] >= 0.9 * 3 * LIMIT_S
        )


def test_large_inputs_are_sent_once_per_sandbox_and_again_when_the_harness_lost_them():
    from valley.grader.session import Session, _input_key

    numbers = " ".join(str(n) for n in range(40_000))  # over the size that is cached
    stdin_code, functional_code = "print(sum(map(int, input().split())))", "def f(a):\n    return sum(a)\n"
    with Session("process").start() as session:
        for code, mode, fn_name, test_input in (
            (stdin_code, "stdin", None, numbers),
            (functional_code, "functional", "f", f"[{numbers.replace(' ', ',')}]"),
        ):
            assert session.load(code, mode, fn_name) is None
            first = session.run(test_input, 5)
            assert session._test_message(test_input, {}).find(b'"input"') < 0  # the key alone now
            again = session.run(test_input, 5)
            assert [r["status"] for r in (first, again)] == ["exited"] * 2
            assert (first.get("stdout"), first.get("decoded")) == (again.get("stdout"), again.get("decoded"))
            session.end_program()
        # the grader believes the harness holds an input it never got: the harness asks for it
        other = numbers + " 1"
        session.inputs.put(_input_key(other), True, len(other))
        assert session.load(stdin_code, "stdin", None) is None
        assert session.run(other, 5)["stdout"] == f"{sum(range(40_000)) + 1}\n"


def test_the_floor_spreads_the_needed_cpu_over_the_cores_the_workers_can_use():
    rows = [{"tests": [{"cpu_s": 1.5}, {"cpu_s": 2.5}]}, {"tests": [{"cpu_s": None}]}, {"tests": [{"cpu_s": 2.0}]}]
    assert floor_s(rows, workers=1, cores=2) == 6.0  # one worker runs one test at a time: one core
    assert floor_s(rows, workers=2, cores=2) == 3.0
    assert floor_s(rows, workers=16, cores=2) == 3.0  # more workers than cores share the cores
    assert floor_s(rows, workers=3, cores=8) == 2.0


# Recursion that goes down and back up past a boundary of CPython's frame "data stack" chunks:
# CPython frees a chunk as soon as its frames return and maps a new one on the way down again.
RECURSION = """import resource, sys
sys.setrecursionlimit(10**6)
def down(n):
    return 0 if n == 0 else 1 + down(n - 1)
down(1000)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2000):
    down(1000)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
"""


# the same in a thread with a large stack: the idiom competitive programmers use for deep recursion
RECURSION_IN_A_THREAD = (
    "import threading\nthreading.stack_size(1 << 27)\ndef main():\n"
    + "".join(f"    {line}\n" for line in RECURSION.splitlines())
    + "thread = threading.Thread(target=main)\nthread.start()\nthread.join()\n"
)


@pytest.mark.parametrize("program", [RECURSION, RECURSION_IN_A_THREAD], ids=["main", "thread"])
@pytest.mark.parametrize("sandbox", ["process", pytest.param("runsc", marks=pytest.mark.runsc)])
def test_recursion_maps_no_memory_per_call(sandbox, program):
    """Each chunk mapped again is fresh pages to fault in and, under gVisor, an mmap and a munmap
    through the Sentry: this program used 2.6 CPU-s there against 0.34 s natively, so a recursive
    program near the limit timed out here and passed under LiveCodeBench. The program now runs
    where its frames need no new chunk, down to ~32 MiB of them."""
    from valley.grader.session import Session

    if sandbox == "runsc":
        require_tool("runsc", "apt-get install -y runsc")
    with Session(sandbox).start() as session:
        assert session.load(program, "stdin", None) is None
        result = session.run("", 30)
    assert result["status"] == "exited", result
    assert int(result["stdout"]) < 200, f"{result['stdout'].strip()} page faults in 2,000 calls down and back"
    assert result["cpu_s"] < 0.5, result["cpu_s"]


@pytest.mark.slow
def test_the_cpu_limit_stops_a_program_only_past_the_limit_when_cpus_are_contended():
    """The kernel enforces RLIMIT_CPU on its tick-sampled CPU time, which runs ahead of the precise
    time when CPUs are contended: SIGXCPU came at 0.88 precise CPU-s of a 1 s limit with three graders
    running at once, so a program needing 0.9 s timed out only when the machine was busy. The limit is
    judged on the precise time; RLIMIT_CPU is only a backstop."""
    from valley.cores import usable_cores
    from valley.grader.grading import grade_code
    from valley.grader.problem import Problem, TestCase

    # each in its own session, as other graders' sandboxes are: the scheduler shares the CPUs between them
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(3 * usable_cores())
    ]
    try:
        problem = Problem("loop", (TestCase("", "1"),), timeout_s=LIMIT_S)
        tests = [grade_code(problem, "while True:\n    pass\n", sandbox="process").tests[-1] for _ in range(8)]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert all(t.status == "timeout" and "CPU time limit" in t.detail for t in tests), tests
    assert min(t.cpu_s for t in tests) >= LIMIT_S, [t.cpu_s for t in tests]
