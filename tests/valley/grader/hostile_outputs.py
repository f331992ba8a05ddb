"""Outputs a program can choose to cost the grader as much as possible, and what grading one
costs it: the grader's own CPU time and peak memory growth, measured in a fresh grader process
(process sandbox, warmed up first so that only the hostile output is counted; the sandbox's own
costs are not in them). Shared by test_grader_budgets.py (bounds) and
tests/benchmarks/bench_grader.py --only hostile (figures per MiB)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

GRADER = textwrap.dedent("""
    import json, resource, sys
    sys.path.insert(0, {root!r})
    from valley.grader.grading import grade_code
    from valley.grader.problem import Problem, TestCase
    test = TestCase({test_input!r}, {expected!r})
    problem = Problem("p", (test,), fn_name={fn_name!r}, timeout_s=20, judge={judge!r})
    grade_code(problem, {warm_up!r}, sandbox="process")  # the sandbox is started and warm
    before = resource.getrusage(resource.RUSAGE_SELF)
    verdict = grade_code(problem, {code!r}, sandbox="process")
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({{"status": verdict.status, "detail": verdict.tests[-1].detail[-300:],
                      "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
                      "rss_growth_mb": (after.ru_maxrss - before.ru_maxrss) / 1024}}))
""")
COLLIDING = "[(2**61 - 1) * k + 1 for k in range(200_000)]"  # all hash to 1: a set of them is quadratic


def value_program(payload: str) -> str:
    """A functional program that leaves `payload` (an expression building a text) in its value channel."""
    return f"import json, os\ndef f(x):\n    os.write(3, ({payload}).encode())\n    os._exit(0)\n"


def stdout_program(text: str) -> str:
    return f"import sys\nsys.stdout.write({text})\n"


#: name: (functional, program, the output's size in MiB)
CASES = {
    "value: set of 200k hash-colliding ints": (True, value_program(f'json.dumps({{"set": {COLLIDING}}})'), 4.2),
    "value: dict keyed by them": (True, value_program(f'json.dumps({{"dict": [[n, 0] for n in {COLLIDING}]}})'), 5.0),
    "value: 48 MiB of nested empty lists": (True, value_program('"[" + "[]," * (48 * 2**20 // 3) + "[]]"'), 48),
    "stdout: 60 MiB of newlines": (False, stdout_program('"\\n" * (60 * 2**20)'), 60),
    "stdout: 30 M one-digit tokens": (False, stdout_program('"1 " * (30 * 2**20)'), 60),
    "stdout: 60 MiB of NUL bytes": (False, stdout_program('"\\x00" * (60 * 2**20)'), 60),
}


def grader_cost(functional: bool, code: str, judge: str = "lcb", cpu_limit_s: int = 30) -> dict:
    """The verdict and the grader's own costs for one program, in a fresh grader whose CPU time
    is capped (a quadratic decoder fails instead of running for hours)."""
    script = GRADER.format(
        root=str(ROOT),
        test_input="1" if functional else "1\n",
        expected="[1, 2]" if functional else "1\n2 3\n",
        fn_name="f" if functional else None,
        judge=judge,
        warm_up="def f(x):\n    return [1, 2]\n" if functional else "print(1)\nprint(2, 3)\n",
        code=code,
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=280,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit_s, cpu_limit_s + 1)),
    )
    if result.returncode != 0:
        return {"status": f"grader died (exit {result.returncode})", "detail": result.stderr[-300:], "cpu_s": None}
    return json.loads(result.stdout)
