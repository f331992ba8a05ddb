"""The sample corpus valley ships: small original problems in the real datasets' schemas.

Three files, written deterministically (same bytes on every run and machine):

* `taco.jsonl` — BAAI/TACO rows (all string columns, `input_output` a JSON string with
  `inputs`/`outputs` and `fn_name` for call-based problems, uppercase difficulty labels).
  Every row is in TACO's `train` split; its `index` is its line number.
* `ocr2.jsonl` — nvidia/OpenCodeReasoning-2 `python`-split rows pointing at those problems by
  (`dataset`, `split`, `index`) with `question == "-"`, as the real dataset does; each
  `r1_generation` is `<think>…</think>` reasoning plus a final ```python block, and a
  realistic share of them is wrong (they fail the problem's tests).
* `lcb.jsonl` — livecodebench/code_generation_lite rows (stdin and functional problems,
  private tests packed like the real dataset, contest dates mostly inside MINI_EVAL's window).

Problems come from the task families in `valley.data.sample_families` (sum of multiples, primes,
LIS, edit distance, …), each with a reference function, plausible wrong variants and an input
generator. Expected outputs come from running the reference; every wrong variant is checked to
fail at least one test before it is written. No text is taken from the real datasets. The rows
are built by `valley.data.corpus_rows`, which the mini tier (`valley.data.mini_tier`, written
into `mini/` by `write_sample_corpus`) shares.
"""

from __future__ import annotations

import json
import random
import textwrap
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from valley.data import corpus_rows
from valley.data.mini_tier import mini_corpus
from valley.data.packaged import CORPUS_VERSION, MINI_SUBDIR
from valley.data.sample_families import Family, families
from valley.files import write_atomic

# ----------------------------------------------------------------------------- programs


def function_code(family: Family, body: str) -> str:
    return f"def {family.fn}({family.sig}):\n{textwrap.indent(body, '    ')}\n"


def stdin_program(family: Family, body: str) -> str:
    call = f"{family.fn}({family.sig})"
    printer = f"print(' '.join(map(str, {call})))" if family.out == "list" else f"print({call})"
    return f"{function_code(family, body)}\n\n{corpus_rows.STDIN_READERS[family.kind]}{printer}\n"


def stdin_text(family: Family, args: tuple) -> str:
    if family.kind == "list":
        return f"{len(args[0])}\n{' '.join(map(str, args[0]))}\n"
    if family.kind == "list_k":
        return f"{len(args[0])} {args[1]}\n{' '.join(map(str, args[0]))}\n"
    return "".join(f"{a}\n" for a in args)


def stdout_text(family: Family, result: object) -> str:
    return (" ".join(map(str, result)) if family.out == "list" else str(result)) + "\n"


def run_function(family: Family, body: str, args: tuple) -> object:
    namespace: dict = {}
    exec(function_code(family, body), namespace)  # our own reference/wrong programs, never user input
    return namespace[family.fn](*[list(a) if isinstance(a, list) else a for a in args])


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def method_signature(family: Family) -> str:
    hints = {"nums": "list[int]", "k": "int", "n": "int", "s": "str", "a": "str", "b": "str"}
    returns = {"int": "int", "str": "str", "list": "list[int]"}[family.out]
    args = ", ".join(f"{name}: {hints[name]}" for name in family.sig.split(", "))
    return f"def {camel(family.fn)}(self, {args}) -> {returns}:"


# ----------------------------------------------------------------------------- problems


@dataclass
class Problem:
    family: Family
    param: object
    call_based: bool
    tests: list[tuple[tuple, object]] = field(default_factory=list)

    @property
    def slug(self) -> str:
        tag = str(self.param).translate(str.maketrans(" -+*<>=", "_mpxlge"))
        return f"{self.family.key}-{tag}-{'call' if self.call_based else 'stdin'}"


def make_tests(family: Family, param: object, count: int) -> list[tuple[tuple, object]]:
    rng = random.Random(f"{CORPUS_VERSION}/{family.key}/{param}")
    cases = list(family.edge(param))
    seen = {json.dumps(c) for c in cases}
    while len(cases) < count:
        args = family.gen(rng, param)
        if json.dumps(args) not in seen:
            seen.add(json.dumps(args))
            cases.append(args)
    body = family.correct(param)
    return [(args, run_function(family, body, args)) for args in cases[:count]]


def fails_some_test(family: Family, body: str, tests: list[tuple[tuple, object]]) -> bool:
    for args, expected in tests:
        try:
            if run_function(family, body, args) != expected:
                return True
        except Exception:
            return True
    return False


def passed_share(family: Family, body: str, tests: list[tuple[tuple, object]]) -> float:
    passed = 0
    for args, expected in tests:
        try:
            passed += run_function(family, body, args) == expected
        except Exception:
            pass
    return passed / len(tests)


def _example_block(problem: Problem, shown: int = 2) -> str:
    family = problem.family
    parts = []
    for number, (args, expected) in enumerate(problem.tests[:shown], 1):
        if problem.call_based:
            call = f"{family.fn}({', '.join(repr(a) for a in args)})"
            parts.append(f"Example {number}:\n{call} returns {expected!r}")
        else:
            shown_io = f"Input:\n{stdin_text(family, args)}Output:\n{stdout_text(family, expected)}"
            parts.append(f"Example {number}:\n{shown_io}".rstrip())
    return "\n\n".join(parts)


_INPUT_FORMAT = {
    "list": "The first line holds n (1 <= n <= 100). The second line holds n space-separated integers.",
    "int": "A single line holds the integer n.",
    "str": "A single line holds the string.",
    "list_k": "The first line holds n and k. The second line holds n space-separated integers.",
    "two_str": "The first line holds a, the second line holds b.",
}


def taco_question(problem: Problem) -> str:
    family, p = problem.family, problem.param
    text = f"{family.statement(p)}\n\n"
    if problem.call_based:
        text += f"Complete the function `{family.fn}({family.sig})` that returns the answer.\n\n"
    else:
        output = "Print the values separated by spaces." if family.out == "list" else "Print the answer on one line."
        text += f"-----Input-----\n{_INPUT_FORMAT[family.kind]}\n\n-----Output-----\n{output}\n\n"
    return text + _example_block(problem) + "\n"


_STDIN_SOURCES = ("codeforces", "atcoder", "codechef", "hackerrank", "aizu")
_CALL_SOURCES = ("codewars", "geeksforgeeks", "leetcode")


def taco_source(problem: Problem, number: int) -> str:
    """The TACO `source` of row `number`: judges with stdin problems, or with function problems."""
    judges = _CALL_SOURCES if problem.call_based else _STDIN_SOURCES
    return judges[number % len(judges)]


def taco_row(problem: Problem, number: int) -> dict:
    family, p = problem.family, problem.param
    if problem.call_based:
        inputs = [list(args) for args, _ in problem.tests]
        outputs = [[expected] for _, expected in problem.tests]
        solution = function_code(family, family.correct(p))
        starter = f"def {family.fn}({family.sig}):\n\t"
    else:
        inputs = [stdin_text(family, args) for args, _ in problem.tests]
        outputs = [stdout_text(family, expected) for _, expected in problem.tests]
        solution = stdin_program(family, family.correct(p))
        starter = ""
    return corpus_rows.taco_row(
        question=taco_question(problem),
        solution=solution,
        starter_code=starter,
        inputs=inputs,
        outputs=outputs,
        fn_name=family.fn if problem.call_based else None,
        difficulty=family.difficulty,
        name=family.title(p),
        source=taco_source(problem, number),
        url=f"https://valley.invalid/sample/taco/{problem.slug}",
        day=date(2019, 1, 1) + timedelta(days=37 * number),
        tags=family.tags,
        auxiliary_space=None if problem.call_based else "O(n)",
    )


def taco_problems(families: list[Family]) -> list[Problem]:
    problems = []
    for family in families:
        for param, call_based in ((family.params[0], False), (family.params[1], True)):
            problems.append(Problem(family, param, call_based, make_tests(family, param, 8)))
    return problems


# ------------------------------------------------------------------------------ responses

_OPENINGS = (
    "Okay, let me read the problem carefully.",
    "Let me think about what is being asked.",
    "Alright, so the task is the following.",
    "Hmm, let me restate the problem first.",
)
_CHECKS = (
    "Let me check this against the first example: the input gives {expected}, which matches.",
    "Quick sanity check with the first example: I expect {expected}, and tracing the code gives that.",
    "Trying the sample by hand, the answer comes out as {expected}.",
)
_EDGES = (
    "Edge cases: a single element, repeated values, the smallest inputs.",
    "I should think about small inputs too, they are where off-by-one errors hide.",
    "Constraints are small, so efficiency is not a concern here.",
    "",
)
_CLOSINGS = (
    "Here is the solution:",
    "The final code:",
    "This reads the input, computes the answer and prints it:",
    "Putting it together:",
)


def response_text(problem: Problem, body: str, idea: str, rng: random.Random) -> str:
    family = problem.family
    code = function_code(family, body) if problem.call_based else stdin_program(family, body)
    expected = problem.tests[0][1]
    thinking = "\n\n".join(
        part
        for part in (
            rng.choice(_OPENINGS) + " " + family.statement(problem.param),
            idea,
            rng.choice(_EDGES),
            rng.choice(_CHECKS).format(expected=repr(expected) if problem.call_based else str(expected)),
        )
        if part
    )
    summary = idea.split(",")[0].rstrip(".") + "."
    return f"<think>\n{thinking}\n</think>\n\n{summary} {rng.choice(_CLOSINGS)}\n\n```python\n{code}```\n"


def ocr2_rows(problems: list[Problem]) -> list[dict]:
    """Teacher-style responses, about seven per problem, 35-40% of them wrong."""
    rows = []
    for index, problem in enumerate(problems):
        family, p = problem.family, problem.param
        rng = random.Random(f"{CORPUS_VERSION}/ocr2/{problem.slug}")
        wrongs = family.wrong(p)
        for body, _ in wrongs:
            if not fails_some_test(family, body, problem.tests):
                raise AssertionError(f"sample corpus: wrong variant of {problem.slug} passes every test")
        for sample in range(rng.randint(5, 9)):
            wrong = rng.random() < 0.34
            body, idea = rng.choice(wrongs) if wrong else (family.correct(p), family.idea(p))
            rows.append(
                corpus_rows.ocr2_row(
                    response_id=corpus_rows.stable_id(f"response/{problem.slug}/{sample}"),
                    question_id=corpus_rows.stable_id(f"question/{problem.slug}"),
                    generation=response_text(problem, body, idea, rng),
                    critique=(
                        "The approach misses a case the tests exercise."
                        if wrong
                        else "The solution handles the examples and the edge cases correctly."
                    ),
                    solution=function_code(family, body) if problem.call_based else stdin_program(family, body),
                    wrong=wrong,
                    passed_share=passed_share(family, body, problem.tests),
                    source=taco_source(problem, index),
                    difficulty=family.difficulty,
                    index=index,
                )
            )
    return rows


# ------------------------------------------------------------------------------------ LCB


def _functional_examples(problem: Problem) -> str:
    """LeetCode-style examples: `Input: nums = [1, 2], k = 3` then `Output: 4`."""
    family = problem.family
    examples = []
    for number, (args, expected) in enumerate(problem.tests[:2], 1):
        given = ", ".join(f"{name} = {json.dumps(a)}" for name, a in zip(family.sig.split(", "), args, strict=True))
        examples.append(f"Example {number}:\nInput: {given}\nOutput: {json.dumps(expected)}")
    return "\n\n".join(examples)


def lcb_rows(families: list[Family]) -> list[dict]:
    """LCB problems from the families' remaining parameters, alternating stdin and functional."""
    rows = []
    start = date(2024, 8, 3)
    for family in families:
        for param in family.params[2:]:
            number = len(rows)
            functional = number % 2 == 1
            problem = Problem(family, param, functional, make_tests(family, param, 10))
            # every sixth problem falls outside the 2024-08-01..2025-01-31 window, before or after it
            if number % 6 == 5:
                contest = date(2024, 5, 4) if number % 12 == 5 else date(2025, 3, 8)
            else:
                contest = start + timedelta(days=(number * 11) % 180)
            if functional:
                tests = [
                    corpus_rows.lcb_test("\n".join(json.dumps(a) for a in args), json.dumps(expected), functional)
                    for args, expected in problem.tests
                ]
                starter = f"class Solution:\n    {method_signature(family)}\n        "
                metadata = {"func_name": camel(family.fn)}
                platform, qid = "leetcode", f"{9000 + number}"
                content = f"{family.statement(param)}\n\n{_functional_examples(problem)}"
            else:
                tests = [
                    corpus_rows.lcb_test(stdin_text(family, args), stdout_text(family, expected), functional)
                    for args, expected in problem.tests
                ]
                starter, metadata = "", {}
                platform = "atcoder" if number % 4 == 0 else "codeforces"
                qid = f"vsc{number:03d}_{'abcd'[number % 4]}"
                content = taco_question(problem).replace("-----", "")
            rows.append(
                corpus_rows.lcb_row(
                    title=family.title(param),
                    content=content,
                    platform=platform,
                    question_id=qid,
                    contest_id=f"valley-sample-{number // 4:02d}",
                    contest_day=contest,
                    starter_code=starter,
                    taco_difficulty=family.difficulty,
                    tests=tests,
                    metadata=metadata,
                )
            )
    return rows


# ---------------------------------------------------------------------------------- write


def corpus() -> dict[str, list[dict]]:
    task_families = families()
    problems = taco_problems(task_families)
    return {
        "taco.jsonl": [taco_row(problem, number) for number, problem in enumerate(problems)],
        "ocr2.jsonl": ocr2_rows(problems),
        "lcb.jsonl": lcb_rows(task_families),
    }


def jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def write_sample_corpus(out_dir: Path) -> dict[str, Path]:
    """Write taco/ocr2/lcb.jsonl into out_dir and the mini tier's into out_dir/mini (each
    atomically); returns their paths by name relative to out_dir."""
    written = {}
    for folder, files in ((out_dir, corpus()), (out_dir / MINI_SUBDIR, mini_corpus())):
        folder.mkdir(parents=True, exist_ok=True)
        for name, rows in files.items():
            path = folder / name
            write_atomic(path, jsonl_bytes(rows))
            written[str(path.relative_to(out_dir))] = path
    return written
