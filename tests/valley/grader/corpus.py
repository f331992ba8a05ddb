"""A grading corpus the project writes itself: LiveCodeBench-schema problems, raw responses
and the verdict each must get.

34 problems (stdin and functional) × 10–13 program variants = 400 programs: correct, wrong
answer, timeout, runtime error, syntax error, partial (passes the first test only), wrong format,
float formatting, deep recursion, big inputs, no code, and raw responses with a decoy code block
inside `<think>`. Everything is deterministic (seeded). `write_corpus(dir)` writes
problems.jsonl (LCB rows, private tests encoded as in the real dataset), generations.jsonl and
expected.jsonl.
"""

from __future__ import annotations

import json
import random
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from valley.grader.lcb import encode_private_tests

FENCE = "```"


@dataclass
class CorpusProblem:
    question_id: str
    mode: str  # stdin | functional
    inputs: list[str]
    outputs: list[str]
    correct: str
    wrong: str
    fn_name: str | None = None
    extra: dict[str, tuple[str, str]] = field(default_factory=dict)  # variant -> (code, verdict)
    with_timeout: bool = False

    def lcb_row(self) -> dict:
        testtype = self.mode
        cases = [
            {"input": i, "output": o, "testtype": testtype} for i, o in zip(self.inputs, self.outputs, strict=True)
        ]
        starter = f"class Solution:\n    def {self.fn_name}(self, *args):\n        " if self.fn_name else ""
        return {
            "question_title": self.question_id,
            "question_content": f"Corpus problem {self.question_id}.",
            "platform": "leetcode" if self.fn_name else "atcoder",
            "question_id": self.question_id,
            "contest_id": "corpus",
            "contest_date": "2024-09-01T00:00:00",
            "starter_code": starter,
            "difficulty": "easy",
            "public_test_cases": json.dumps(cases[:1]),
            "private_test_cases": encode_private_tests(cases[1:]),
            "metadata": json.dumps({"func_name": self.fn_name} if self.fn_name else {}),
        }


def fenced(code: str) -> str:
    return f"{FENCE}python\n{code.rstrip()}\n{FENCE}"


def answer(code: str) -> str:
    return f"Here is the solution.\n\n{fenced(code)}\n"


def with_decoy(decoy: str, real: str) -> str:
    return (
        f"<think>\nA first attempt:\n{fenced(decoy)}\nThat is not quite it.\n</think>\nFinal answer:\n\n"
        f"{fenced(real)}\n"
    )


# ---- stdin problems


def _ints_input(rng: random.Random, n: int, low: int = -50, high: int = 50) -> tuple[str, list[int]]:
    values = [rng.randint(low, high) for _ in range(n)]
    return f"{n}\n{' '.join(map(str, values))}\n", values


def scaled_sum(k: int, rng: random.Random) -> CorpusProblem:
    inputs, outputs = [], []
    for n in (3, 7, 12):
        text, values = _ints_input(rng, n)
        inputs.append(text)
        outputs.append(f"{sum(values) * k + len(values)}\n")
    code = (
        "import sys\ndata = sys.stdin.read().split()\nn = int(data[0])\nvalues = list(map(int, data[1:1 + n]))\n"
        f"print(sum(values) * {k} + n)\n"
    )
    return CorpusProblem(
        f"sum{k}", "stdin", inputs, outputs, code, code.replace("+ n)", "+ n + 1)"), with_timeout=k % 3 == 0
    )


def sorted_values(descending: bool, separator: str, rng: random.Random, name: str) -> CorpusProblem:
    inputs, outputs = [], []
    for n in (4, 6, 9):
        text, values = _ints_input(rng, n)
        inputs.append(text)
        ordered = sorted(values, reverse=descending)
        outputs.append(("\n" if separator == "lines" else " ").join(map(str, ordered)) + "\n")
    joiner = '"\\n"' if separator == "lines" else '" "'
    code = (
        "n = int(input())\nvalues = list(map(int, input().split()))\n"
        f"values.sort(reverse={descending})\nprint({joiner}.join(map(str, values)))\n"
    )
    wrong = code.replace(f"reverse={descending}", f"reverse={not descending}")
    problem = CorpusProblem(name, "stdin", inputs, outputs, code, wrong)
    problem.extra["comma_format"] = (code.replace(f"{joiner}.join", '",".join'), "wrong_answer")
    return problem


def mean_of_four(k: int, rng: random.Random) -> CorpusProblem:
    """Float output: the mean of 4 integers is exact in decimal (x.0, x.25, x.5, x.75)."""
    inputs, outputs = [], []
    for _ in range(3):
        values = [rng.randint(0, 40) for _ in range(4)]
        values[0] += 1 if sum(values) % 4 in (0, 2) else 0  # make a quarter appear: x.25 or x.75
        inputs.append(" ".join(map(str, values)) + "\n")
        outputs.append(f"{sum(values) / 4 + k}\n")
    code = f"values = list(map(int, input().split()))\nprint(sum(values) / 4 + {k})\n"
    problem = CorpusProblem(f"mean{k}", "stdin", inputs, outputs, code, code.replace("/ 4", "/ 3"))
    problem.extra.update(
        {
            # LCB compares tokens as Decimals: trailing zeros are fine, a rounded value is not
            "float_padded": (
                f"values = list(map(int, input().split()))\nprint(f'{{sum(values) / 4 + {k}:.6f}}')\n",
                "pass",
            ),
            "float_rounded": (
                f"values = list(map(int, input().split()))\nprint(f'{{sum(values) / 4 + {k}:.1f}}')\n",
                "wrong_answer",
            ),
            "float_scientific": (
                f"values = list(map(int, input().split()))\nprint(f'{{(sum(values) / 4 + {k}) * 100:.0f}}e-2')\n",
                "pass",
            ),
        }
    )
    return problem


def count_letter(letter: str, rng: random.Random) -> CorpusProblem:
    inputs, outputs = [], []
    for n in (5, 20, 60):
        word = "".join(rng.choice("abcde") for _ in range(n))
        inputs.append(word + "\n")
        outputs.append(f"{word.count(letter)}\n")
    code = f"s = input().strip()\nprint(s.count({letter!r}))\n"
    return CorpusProblem(
        f"count_{letter}",
        "stdin",
        inputs,
        outputs,
        code,
        code.replace("s.count", "len(s) - s.count"),
        with_timeout=letter == "a",
    )


def recursive_sum(offset: int) -> CorpusProblem:
    """Deep recursion: LCB's prelude raises the limit to 50000, so depth 30000 must pass."""
    depths = (10, 3000, 30000)
    inputs = [f"{n}\n" for n in depths]
    outputs = [f"{n * (n + 1) // 2 + offset}\n" for n in depths]
    code = f"def total(n):\n    return 0 if n == 0 else n + total(n - 1)\n\nprint(total(int(input())) + {offset})\n"
    problem = CorpusProblem(
        f"rec{offset}", "stdin", inputs, outputs, code, code.replace(f"+ {offset})", f"+ {offset + 1})")
    )
    problem.extra["recursion_too_deep"] = ("import sys\nsys.setrecursionlimit(1000)\n" + code, "runtime_error")
    return problem


def equal_pairs(seed: int) -> CorpusProblem:
    """Big input: 200000 numbers; O(n) passes, O(n^2) times out."""
    rng = random.Random(seed)
    inputs, outputs = [], []
    for n in (6, 200_000, 200_000):
        values = [rng.randint(1, 1000) for _ in range(n)]
        inputs.append(f"{n}\n{' '.join(map(str, values))}\n")
        counts: dict[int, int] = {}
        for value in values:
            counts[value] = counts.get(value, 0) + 1
        outputs.append(f"{sum(c * (c - 1) // 2 for c in counts.values())}\n")
    code = (
        "import sys\nfrom collections import Counter\n"
        "data = sys.stdin.buffer.read().split()\nn = int(data[0])\n"
        "counts = Counter(data[1:1 + n])\nprint(sum(c * (c - 1) // 2 for c in counts.values()))\n"
    )
    slow = (
        "n = int(input())\na = input().split()\npairs = 0\n"
        "for i in range(n):\n    for j in range(i + 1, n):\n        pairs += a[i] == a[j]\nprint(pairs)\n"
    )
    problem = CorpusProblem(f"pairs{seed}", "stdin", inputs, outputs, code, code.replace("c - 1", "c + 1"))
    problem.extra["quadratic"] = (slow, "timeout")
    return problem


# ---- functional problems (LeetCode style: class Solution, JSON-per-line arguments)


def weighted_total(k: int, rng: random.Random) -> CorpusProblem:
    inputs, outputs = [], []
    for n in (2, 5, 8):
        nums = [rng.randint(-20, 20) for _ in range(n)]
        weight = rng.randint(1, 9)
        inputs.append(f"{json.dumps(nums)}\n{weight}")
        outputs.append(json.dumps(sum(nums) * weight + k))
    code = (
        "from typing import List\n\nclass Solution:\n"
        "    def weightedTotal(self, nums: List[int], weight: int) -> int:\n"
        f"        return sum(nums) * weight + {k}\n"
    )
    problem = CorpusProblem(
        f"lc_total{k}",
        "functional",
        inputs,
        outputs,
        code,
        code.replace(f"+ {k}", f"- {k}"),
        fn_name="weightedTotal",
        with_timeout=k % 3 == 1,
    )
    problem.extra["plain_function"] = (
        f"def weightedTotal(nums, weight):\n    return sum(nums) * weight + {k}\n",
        "pass",
    )
    problem.extra["string_result"] = (
        code.replace("return sum", "return str(sum").replace(f"+ {k}\n", f"+ {k})\n"),
        "wrong_answer",
    )
    problem.extra["float_result"] = (code.replace(f"+ {k}\n", f"+ {k} + 0.0\n"), "pass")  # 3.0 == 3
    return problem


def min_max(k: int, rng: random.Random) -> CorpusProblem:
    inputs, outputs = [], []
    for n in (3, 6, 10):
        nums = [rng.randint(-100, 100) for _ in range(n)]
        inputs.append(json.dumps(nums))
        outputs.append(json.dumps([min(nums) - k, max(nums) + k]))
    code = f"class Solution:\n    def minMax(self, nums):\n        return [min(nums) - {k}, max(nums) + {k}]\n"
    problem = CorpusProblem(
        f"lc_minmax{k}",
        "functional",
        inputs,
        outputs,
        code,
        code.replace(f"max(nums) + {k}", f"max(nums) - {k}"),
        fn_name="minMax",
    )
    problem.extra["tuple_result"] = (
        code.replace("return [", "return (").replace("]\n", ")\n"),
        "pass",
    )  # a top-level tuple is a list
    return problem


def index_pairs(k: int, rng: random.Random) -> CorpusProblem:
    inputs, outputs = [], []
    for n in (2, 4, 7):
        nums = [rng.randint(0, 9) for _ in range(n)]
        inputs.append(json.dumps(nums))
        outputs.append(json.dumps([[i, v + k] for i, v in enumerate(nums)]))
    code = (
        f"class Solution:\n    def indexPairs(self, nums):\n        return [[i, v + {k}] for i, v in enumerate(nums)]\n"
    )
    problem = CorpusProblem(
        f"lc_pairs{k}",
        "functional",
        inputs,
        outputs,
        code,
        code.replace(f"v + {k}", f"v + {k + 1}"),
        fn_name="indexPairs",
    )
    # LCB converts only a top-level tuple: a list of tuples is not equal to a list of lists
    problem.extra["nested_tuples"] = (
        code.replace("[[i, v", "[(i, v").replace(f"{k}] for", f"{k}) for"),
        "wrong_answer",
    )
    return problem


# ---- programs


def stdin_variants(problem: CorpusProblem) -> dict[str, tuple[str, str]]:
    code, wrong = problem.correct, problem.wrong
    first = problem.outputs[0].strip()
    variants = {
        "correct": (answer(code), "pass"),
        "main_guard": (
            answer("def main():\n" + textwrap.indent(code, "    ") + "\n\nif __name__ == '__main__':\n    main()\n"),
            "pass",
        ),
        "trailing_blank_lines": (answer(code + "print()\nprint('   ')\n"), "pass"),
        "exit_zero": (answer(code + "import sys\nsys.exit(0)\n"), "pass"),
        "decoy_in_think": (with_decoy(wrong, code), "pass"),
        "decoy_correct_in_think": (with_decoy(code, wrong), "wrong_answer"),
        "wrong_answer": (answer(wrong), "wrong_answer"),
        "extra_line": (answer(code + "print(0)\n"), "wrong_answer"),
        "partial": (answer(f"print({first!r})\n"), "wrong_answer"),
        "runtime_error": (answer(code + "raise RuntimeError('boom')\n"), "runtime_error"),
        "syntax_error": (answer(code + "print(\n"), "compile_error"),
        "no_code": (f"<think>\n{fenced(code)}\n</think>\nI would sum the values and print them.", "no_code"),
    }
    if problem.with_timeout:
        variants["timeout"] = (answer("while True:\n    pass\n" + code), "timeout")
    return variants


def functional_variants(problem: CorpusProblem) -> dict[str, tuple[str, str]]:
    code, wrong = problem.correct, problem.wrong
    method = f"    def {problem.fn_name}(self, *args):\n"
    variants = {
        "correct": (answer(code), "pass"),
        "debug_prints": (answer(code.replace("        return", "        print('debug')\n        return", 1)), "pass"),
        "decoy_in_think": (with_decoy(wrong, code), "pass"),
        "decoy_correct_in_think": (with_decoy(code, wrong), "wrong_answer"),
        "wrong_answer": (answer(wrong), "wrong_answer"),
        "partial": (answer(f"class Solution:\n{method}        return {problem.outputs[0]}\n"), "wrong_answer"),
        "runtime_error": (answer(f"class Solution:\n{method}        return args[0][10 ** 6]\n"), "runtime_error"),
        "syntax_error": (answer(code + "    def broken(self:\n"), "compile_error"),
        "missing_method": (
            answer("class Solution:\n    def somethingElse(self):\n        return 0\n"),
            "compile_error",
        ),
        "no_code": ("The method returns the answer directly.", "no_code"),
    }
    if problem.with_timeout:
        variants["timeout"] = (answer(f"class Solution:\n{method}        while True:\n            pass\n"), "timeout")
    return variants


def build_corpus(seed: int = 7) -> tuple[list[dict], list[dict], list[dict]]:
    """(LCB problem rows, generations, expected verdicts)."""
    rng = random.Random(seed)
    problems: list[CorpusProblem] = []
    problems += [scaled_sum(k, rng) for k in range(1, 9)]
    problems += [
        sorted_values(d, s, rng, f"sort_{'desc' if d else 'asc'}_{s}")
        for d in (False, True)
        for s in ("spaces", "lines")
    ]
    problems += [mean_of_four(k, rng) for k in range(3)]
    problems += [count_letter(letter, rng) for letter in "abc"]
    problems += [recursive_sum(offset) for offset in (0, 5)]
    problems += [equal_pairs(seed) for seed in (1, 2)]
    problems += [weighted_total(k, rng) for k in range(1, 7)]
    problems += [min_max(k, rng) for k in range(1, 4)]
    problems += [index_pairs(k, rng) for k in range(3)]
    rows, generations, expected = [], [], []
    for problem in problems:
        rows.append(problem.lcb_row())
        variants = stdin_variants(problem) if problem.mode == "stdin" else functional_variants(problem)
        variants.update({name: (answer(code), verdict) for name, (code, verdict) in problem.extra.items()})
        for name, (response, verdict) in variants.items():
            sample_id = name
            generations.append({"question_id": problem.question_id, "sample_id": sample_id, "response": response})
            expected.append({"question_id": problem.question_id, "sample_id": sample_id, "verdict": verdict})
    return rows, generations, expected


def write_corpus(directory: Path, seed: int = 7) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in zip(("problems", "generations", "expected"), build_corpus(seed), strict=True):
        paths[name] = directory / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(row) + "\n" for row in rows))
    return paths
