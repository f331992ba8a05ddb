"""A LiveCodeBench-like corpus for grader throughput and time-limit tests: large inputs (up to
`max_numbers` integers per test), stdin and functional problems, and programs of the kinds a
model writes: fast and correct, slow but correct (CPU-bound, about `slow_fraction` of the time
limit on the largest test), wrong only on large tests, crashing on large tests, and too slow on
large tests (they loop there until killed). Seeded and deterministic except for the slow
programs' work, which is calibrated to this machine's CPU speed so that they stay under the limit
by the same margin everywhere.

`build(...)` returns (LCB rows, generations, expected verdicts) in the shapes of tests/valley/grader/corpus.py.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Callable

from tests.valley.grader.corpus import answer
from valley.grader.lcb import encode_private_tests

# Loops of this shape run at this many iterations per CPU second here (measured once per process).
SPIN = "def spin(count):\n    for _ in range(count):\n        pass\nspin({n})\n"
_spin_rate: float | None = None


def _spin(count: int) -> None:
    for _ in range(count):
        pass


def spin_rate() -> float:
    """Iterations per CPU second: the median of several samples. CPU time, not wall: a loaded
    machine calibrates the same. The median, not the best: on a shared VM the CPU time of the same
    work drifts up to 2x within seconds (docs/grader.md, "Time limits"), and a program calibrated
    on the fastest moment would sit at the limit on a slow one."""
    global _spin_rate
    if _spin_rate is None:
        rates = []
        for _ in range(9):
            started = time.process_time()
            _spin(2_000_000)
            rates.append(2_000_000 / max(time.process_time() - started, 1e-3))
        _spin_rate = statistics.median(rates)
    return _spin_rate


@dataclass(frozen=True)
class Family:
    """A problem shape: its answer and the code computing it from a list `a` of integers."""

    name: str
    mode: str  # stdin | functional
    fn_name: str | None
    solve: Callable[[list[int]], object]  # -> output text (stdin) or the JSON value (functional)
    body: str  # prints (stdin) or returns (functional) the answer
    wrong: str  # a line that makes the answer wrong when len(a) > 1000


READERS = {  # two ways programs read stdin: all at once, or line by line
    "buffer": (
        "import sys\ndata = sys.stdin.buffer.read().split()\nn = int(data[0])\na = list(map(int, data[1:n + 1]))\n"
    ),
    "lines": "n = int(input())\na = list(map(int, input().split()))\n",
}
LARGE = "len(a) > 1000"

FAMILIES = (
    Family("sum", "stdin", None, lambda a: f"{sum(a)}\n", "print(sum(a))\n", f"a = a[1:] if {LARGE} else a\n"),
    Family(
        "sorted",
        "stdin",
        None,
        lambda a: " ".join(map(str, sorted(a))) + "\n",
        "print(' '.join(map(str, sorted(a))))\n",
        f"a = a[1:] if {LARGE} else a\n",
    ),
    Family(
        "prefix",
        "stdin",
        None,
        lambda a: "\n".join(map(str, list(accumulate(a))[:50])) + "\n",
        "from itertools import accumulate\nprint('\\n'.join(map(str, list(accumulate(a))[:50])))\n",
        f"a = a[::-1] if {LARGE} else a\n",
    ),
    Family(
        "maxsub",
        "functional",
        "maxSubarraySum",
        lambda a: _max_subarray(a),
        "best = cur = a[0]\nfor x in a[1:]:\n    cur = max(x, cur + x)\n    best = max(best, cur)\nreturn best\n",
        f"a = [abs(x) for x in a] if {LARGE} else a\n",
    ),
    Family(
        "squares",
        "functional",
        "sortedSquares",
        lambda a: sorted(x * x for x in a),
        "return sorted(x * x for x in a)\n",
        f"a = a[1:] if {LARGE} else a\n",
    ),
)


def _max_subarray(a: list[int]) -> int:
    best = cur = a[0]
    for x in a[1:]:
        cur = max(x, cur + x)
        best = max(best, cur)
    return best


def _program(family: Family, prefix: str = "", reader: str = "buffer") -> str:
    if family.mode == "stdin":
        return READERS[reader] + prefix + family.body
    indented = "".join("        " + line + "\n" for line in (prefix + family.body).splitlines())
    return f"from typing import List\n\nclass Solution:\n    def {family.fn_name}(self, a: List[int]):\n{indented}"


def variants(family: Family, max_numbers: int, timeout_s: float, slow_fraction: float) -> dict[str, tuple[str, str]]:
    per_number = max(1, int(spin_rate() * timeout_s * slow_fraction / max_numbers))
    return {
        "correct": (_program(family), "pass"),
        "correct_lines": (_program(family, reader="lines"), "pass"),
        "slow_correct": (_program(family, SPIN.format(n=f"len(a) * {per_number}")), "pass"),
        "wrong_on_large": (_program(family, family.wrong), "wrong_answer"),
        "crash_on_large": (_program(family, f"x = a[len(a)] if {LARGE} else 0\n"), "runtime_error"),
        "loop_on_large": (_program(family, f"while {LARGE}:\n    pass\n"), "timeout"),
    }


def build(
    *,
    problems: int = 16,
    samples: int = 10,
    max_numbers: int = 200_000,
    tests: int = 7,
    timeout_s: float = 6.0,
    slow_fraction: float = 0.5,
    mix: dict[str, float] | None = None,
    kinds: tuple[str, ...] | None = None,
    seed: int = 0,
) -> tuple[list[dict], list[dict], list[dict]]:
    """`mix`: the share of each variant among generations (the rest are fast correct ones);
    `kinds`: instead, exactly these variants for every problem."""
    mix = mix or {"slow_correct": 0.1, "wrong_on_large": 0.15, "crash_on_large": 0.05, "loop_on_large": 0.02}
    rng = random.Random(seed)
    sizes = [max(1, round(max_numbers ** (i / (tests - 1)))) for i in range(tests)]
    rows, generations, expected = [], [], []
    for index in range(problems):
        family = FAMILIES[index % len(FAMILIES)]
        question_id = f"{family.name}{index}"
        cases = []
        for size in sizes:
            values = [rng.randint(-(10**9), 10**9) for _ in range(size)]
            if family.mode == "stdin":
                cases.append(
                    {
                        "input": f"{size}\n{' '.join(map(str, values))}\n",
                        "output": family.solve(values),
                        "testtype": "stdin",
                    }
                )
            else:
                cases.append(
                    {"input": json.dumps(values), "output": json.dumps(family.solve(values)), "testtype": "functional"}
                )
        rows.append(
            {
                "question_title": question_id,
                "question_content": f"LCB-like problem {question_id}.",
                "platform": "atcoder",
                "question_id": question_id,
                "contest_id": "lcb-like",
                "contest_date": "2024-09-01T00:00:00",
                "starter_code": "",
                "difficulty": "medium",
                "public_test_cases": json.dumps(cases[:2]),
                "private_test_cases": encode_private_tests(cases[2:]),
                "metadata": json.dumps({"func_name": family.fn_name} if family.fn_name else {}),
            }
        )
        programs = variants(family, max_numbers, timeout_s, slow_fraction)
        for sample in range(len(kinds) if kinds else samples):
            draw, kind = rng.random(), kinds[sample] if kinds else "correct" if sample % 2 == 0 else "correct_lines"
            for name, share in ({} if kinds else mix).items():
                if draw < share:
                    kind = name
                    break
                draw -= share
            code, verdict = programs[kind]
            generations.append({"question_id": question_id, "sample_id": f"{sample}-{kind}", "response": answer(code)})
            expected.append({"question_id": question_id, "sample_id": f"{sample}-{kind}", "verdict": verdict})
    return rows, generations, expected


def write(directory: Path, **options) -> dict[str, Path]:
    """problems.jsonl, generations.jsonl and expected.jsonl of `build(**options)`."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in zip(("problems", "generations", "expected"), build(**options), strict=True):
        paths[name] = directory / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(row) + "\n" for row in rows))
    return paths
