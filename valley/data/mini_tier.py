"""The mini tier: synthetic, deliberately easy problems that tiny students can learn.

It exists so the local mini study has a signal to measure (a tiny random-init student never
passes a real problem), and it never enters the paper study: only specs with
`source="mini"` read it, and every run records that source. Everything is labelled as what it
is: TACO `source` "valley-mini", URLs under `valley.invalid/mini/`, LCB ids `mini-NNN` and
contests `valley-mini-NN`.

Each problem instantiates one of a few program templates (sum, extrema, counting, string
reversal, ...). The program is fully determined by a few words of the statement (the task
phrase, plus one digit or letter for the harder templates), so a small model can map statement
to code. Wording varies (intro sentence x task phrase x stdin/functional); the LiveCodeBench
problems are combinations that no training problem is (the same sentence may be trained in
the other format), with their own parameters and hidden tests.
Harder templates (TACO MEDIUM_HARD/HARD) must copy a parameter from the statement.

Written into `valley/data/sample/mini/` by the sample-corpus builder, in the same three
schemas: `taco.jsonl`, `ocr2.jsonl` (short `<think>…</think>` traces then a fenced answer,
about a third of them wrong), `lcb.jsonl`.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import date, timedelta

from valley.data import corpus_rows
from valley.data.packaged import MINI_VERSION


@dataclass(frozen=True)
class Template:
    """A program with a hole for its parameter `{k}`; every (wording, parameter) is a problem."""

    key: str
    difficulty: str  # TACO label; EASY/MEDIUM count as easy, MEDIUM_HARD/HARD as hard (RQ3)
    kind: str  # "list" (n, then n integers) or "str" (one lowercase word)
    method: str  # the function name of functional problems
    returns: str
    tasks: tuple[str, ...]  # task phrases; "{k}" is the parameter
    idea: str
    expr: str  # the answer as an expression of `nums` or `s`
    wrong: tuple[tuple[str, str], ...]  # (expression, the flawed idea behind it)
    params: tuple = (None,)


TEMPLATES = (
    Template(
        "sum",
        "EASY",
        "list",
        "totalSum",
        "int",
        (
            "print the sum of the numbers",
            "print the total of all the numbers",
            "add up the numbers and print the result",
        ),
        "Adding every number gives the answer.",
        "sum(nums)",
        (("sum(nums[1:])", "The first value is the count, so I skip it."),),
    ),
    Template(
        "max",
        "EASY",
        "list",
        "largest",
        "int",
        ("print the largest number", "print the maximum value", "print the biggest element"),
        "The built-in max gives the largest element.",
        "max(nums)",
        (("nums[-1]", "The numbers look sorted, so the last one is the largest."),),
    ),
    Template(
        "min",
        "EASY",
        "list",
        "smallest",
        "int",
        ("print the smallest number", "print the minimum value", "print the lowest element"),
        "The built-in min gives the smallest element.",
        "min(nums)",
        (("nums[0]", "The numbers look sorted, so the first one is the smallest."),),
    ),
    Template(
        "reverse",
        "EASY",
        "str",
        "reverseWord",
        "str",
        ("print the string reversed", "print the word backwards", "reverse the string and print it"),
        "Slicing with step -1 reverses a string.",
        "s[::-1]",
        (("''.join(sorted(s, reverse=True))", "Reversing means putting the letters in reverse order."),),
    ),
    Template(
        "length",
        "MEDIUM",
        "str",
        "wordLength",
        "int",
        ("print the length of the string", "print how many letters the word has", "count the characters of the string"),
        "len gives the number of characters.",
        "len(s)",
        (("len(set(s))", "Count the letters, each one once."),),
    ),
    Template(
        "even",
        "MEDIUM",
        "list",
        "countEven",
        "int",
        ("print how many numbers are even", "count the even numbers", "print the number of even elements"),
        "A number is even when x % 2 == 0; count those.",
        "sum(1 for x in nums if x % 2 == 0)",
        (("len(nums) // 2", "About half of the numbers are even."),),
    ),
    Template(
        "greater",
        "MEDIUM_HARD",
        "list",
        "countGreater",
        "int",
        ("print how many numbers are greater than {k}", "count the numbers larger than {k}"),
        "Count the numbers x with x > {k}.",
        "sum(1 for x in nums if x > {k})",
        (("sum(1 for x in nums if x >= {k})", "Count the numbers that are at least {k}."),),
        tuple(range(1, 10)),
    ),
    Template(
        "multiples",
        "MEDIUM_HARD",
        "list",
        "sumMultiples",
        "int",
        ("print the sum of the numbers divisible by {k}", "add up the multiples of {k} and print the result"),
        "Keep the x with x % {k} == 0 and add them.",
        "sum(x for x in nums if x % {k} == 0)",
        (("sum(nums) // {k}", "Dividing the total by {k} gives the sum of the multiples."),),
        tuple(range(2, 10)),
    ),
    Template(
        "letter",
        "HARD",
        "str",
        "countLetter",
        "int",
        ("print how many times the letter {k} appears", "count the occurrences of the letter {k}"),
        "str.count counts the letter {k}.",
        "s.count('{k}')",
        (("int('{k}' in s)", "Check whether the letter {k} is there."),),
        tuple("abcdefgh"),
    ),
    Template(
        "scaled",
        "HARD",
        "list",
        "scaledMax",
        "int",
        ("print the largest number times {k}", "multiply the maximum by {k} and print it"),
        "Take max(nums) and multiply it by {k}.",
        "max(nums) * {k}",
        (("max(nums) + {k}", "Add {k} to the maximum."),),
        tuple(range(2, 10)),
    ),
)

INTROS = {
    "list": (
        "You are given a list of integers.",
        "A sequence of integers is given.",
        "Read a list of numbers.",
        "Consider the integers in the input.",
    ),
    "str": (
        "You are given a string of lowercase letters.",
        "A word is given.",
        "Read a lowercase string.",
        "Consider the word in the input.",
    ),
}
ARGS = {"list": "nums: list[int]", "str": "s: str"}
INPUT_FORMAT = {
    "list": "The first line holds n. The second line holds n space-separated integers.",
    "str": "A single line holds the string.",
}


# ------------------------------------------------------------------------------ problems


@dataclass(frozen=True)
class MiniProblem:
    template: Template
    intro: str
    task: str  # with the parameter filled in
    param: object
    functional: bool
    tests: tuple[tuple[object, object], ...]  # (argument, expected)

    @property
    def slug(self) -> str:
        digest = hashlib.sha256(f"{self.intro}/{self.task}/{self.functional}".encode()).hexdigest()[:8]
        return f"{self.template.key}-{'call' if self.functional else 'stdin'}-{digest}"

    def expr(self, expr: str) -> str:
        return expr.replace("{k}", str(self.param))

    def code(self, expr: str) -> str:
        t = self.template
        if self.functional:
            return (
                f"class Solution:\n    def {t.method}(self, {ARGS[t.kind]}) -> {t.returns}:\n"
                f"        return {self.expr(expr)}\n"
            )
        return f"{corpus_rows.STDIN_READERS[t.kind]}print({self.expr(expr)})\n"

    @property
    def starter(self) -> str:
        t = self.template
        return (
            f"class Solution:\n    def {t.method}(self, {ARGS[t.kind]}) -> {t.returns}:\n        "
            if self.functional
            else ""
        )

    def stdin(self, arg: object) -> str:
        return f"{len(arg)}\n{' '.join(map(str, arg))}\n" if self.template.kind == "list" else f"{arg}\n"


def answer(problem: MiniProblem, expr: str, arg: object) -> object:
    scope = {"nums": list(arg)} if problem.template.kind == "list" else {"s": arg}
    return eval(problem.expr(expr), {}, scope)  # our own template expressions, never user input


def _argument(rng: random.Random, template: Template, param: object) -> object:
    if template.kind == "list":
        return [rng.randint(0, 20) for _ in range(rng.randint(2, 8))]
    letters = "abcdefgh"
    word = "".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
    return word + str(param) if param is not None and rng.random() < 0.5 else word


def _problem(template: Template, intro: str, task: str, param: object, functional: bool, count: int) -> MiniProblem:
    """A problem with `count` distinct tests, the last ones chosen so that every wrong answer fails one."""
    rng = random.Random(f"{MINI_VERSION}/{template.key}/{intro}/{task}/{param}/{functional}")
    draft = MiniProblem(template, intro, task.replace("{k}", str(param)), param, functional, ())
    args: list = []
    while len(args) < count - len(template.wrong):
        arg = _argument(rng, template, param)
        if arg not in args:
            args.append(arg)
    for expr, _ in template.wrong:  # a wrong trace must really fail its problem's tests
        while True:
            arg = _argument(rng, template, param)
            if arg not in args and answer(draft, expr, arg) != answer(draft, template.expr, arg):
                args.append(arg)
                break
    tests = tuple((arg, answer(draft, template.expr, arg)) for arg in args)
    return MiniProblem(template, intro, draft.task, param, functional, tests)


def problems() -> tuple[list[MiniProblem], list[MiniProblem]]:
    """(training problems, evaluation problems): every wording combination of every template,
    four of each template's combinations held out for evaluation."""
    train, held_out = [], []
    for template in TEMPLATES:
        rng = random.Random(f"{MINI_VERSION}/{template.key}")
        combos = [
            (intro, task, functional)
            for intro in INTROS[template.kind]
            for task in template.tasks
            for functional in (False, True)
        ]
        rng.shuffle(combos)
        evaluated = combos[:4]
        for intro, task, functional in combos:
            param = rng.choice(template.params)
            if (intro, task, functional) in evaluated:
                held_out.append(_problem(template, intro, task, param, functional, 10))
            else:
                train.append(_problem(template, intro, task, param, functional, 8))
    return train, held_out


# ------------------------------------------------------------------------------- rows


def _examples(problem: MiniProblem, shown: int) -> str:
    parts = []
    for number, (arg, expected) in enumerate(problem.tests[:shown], 1):
        if problem.functional:
            parts.append(f"Example {number}:\n{problem.template.method}({arg!r}) returns {expected!r}")
        else:
            parts.append(f"Example {number}:\nInput:\n{problem.stdin(arg)}Output:\n{expected}")
    return "\n\n".join(parts)


def question(problem: MiniProblem, shown: int) -> str:
    """The intro, the input format (stdin), `shown` examples, then the task as the last line: the
    task then sits at a fixed distance before the answer, where a two-layer student finds it."""
    if problem.functional:
        body = f"Complete the method `{problem.template.method}` of class Solution; it returns the answer."
    else:
        body = (
            f"-----Input-----\n{INPUT_FORMAT[problem.template.kind]}\n\n-----Output-----\nPrint the answer on one line."
        )
    return f"{problem.intro}\n\n{body}\n\n{_examples(problem, shown)}\n\nYour task: {problem.task}.\n"


def taco_row(problem: MiniProblem) -> dict:
    t = problem.template
    if problem.functional:
        inputs = [[arg] for arg, _ in problem.tests]
        outputs = [[expected] for _, expected in problem.tests]
    else:
        inputs = [problem.stdin(arg) for arg, _ in problem.tests]
        outputs = [f"{expected}\n" for _, expected in problem.tests]
    return corpus_rows.taco_row(
        # one to four examples: training prompts then span the lengths of the evaluation prompts
        # (LCB's longer wrapper around one example), and a tiny student must find the task anywhere
        question=question(problem, 1 + int(problem.slug[-2:], 16) % 4),
        solution=problem.code(t.expr),
        starter_code=problem.starter,
        inputs=inputs,
        outputs=outputs,
        fn_name=t.method if problem.functional else None,
        difficulty=t.difficulty,
        name=f"Mini: {problem.task}",
        source="valley-mini",
        url=f"https://valley.invalid/mini/taco/{problem.slug}",
        day=date(2020, 1, 1),
    )


def trace(problem: MiniProblem, expr: str, idea: str) -> str:
    """A short teacher trace: the restated task and the idea inside <think>, then the code.
    One fixed shape, so that a tiny student's capacity goes into the mapping from task to code."""
    form = "a method of class Solution" if problem.functional else "a program that reads stdin"
    thinking = f"I must {problem.task}. {problem.expr(idea)} I write {form}."
    return f"<think>\n{thinking}\n</think>\n\n```python\n{problem.code(expr)}```\n"


def ocr2_rows(train: list[MiniProblem]) -> list[dict]:
    """Four to six responses per training problem, about a third of them wrong."""
    rows = []
    for index, problem in enumerate(train):
        t = problem.template
        rng = random.Random(f"{MINI_VERSION}/ocr2/{problem.slug}")
        for sample in range(rng.randint(4, 6)):
            wrong = rng.random() < 0.33
            expr, idea = rng.choice(t.wrong) if wrong else (t.expr, t.idea)
            passed = sum(answer(problem, expr, arg) == expected for arg, expected in problem.tests)
            rows.append(
                corpus_rows.ocr2_row(
                    response_id=corpus_rows.stable_id(f"{MINI_VERSION}/response/{problem.slug}/{sample}"),
                    question_id=corpus_rows.stable_id(f"{MINI_VERSION}/question/{problem.slug}"),
                    generation=trace(problem, expr, idea),
                    critique="The approach misses a case." if wrong else "The solution is correct.",
                    solution=problem.code(expr),
                    wrong=wrong,
                    passed_share=passed / len(problem.tests),
                    source="valley-mini",
                    difficulty=t.difficulty,
                    index=index,
                )
            )
    return rows


def lcb_rows(held_out: list[MiniProblem]) -> list[dict]:
    rows = []
    for number, problem in enumerate(held_out):
        t = problem.template
        if problem.functional:
            tests = [
                corpus_rows.lcb_test(json.dumps(arg), json.dumps(expected), True) for arg, expected in problem.tests
            ]
            platform, metadata = "leetcode", {"func_name": t.method}
        else:
            tests = [
                corpus_rows.lcb_test(problem.stdin(arg), f"{expected}\n", False) for arg, expected in problem.tests
            ]
            platform, metadata = ("atcoder", "codeforces")[number % 2], {}
        rows.append(
            corpus_rows.lcb_row(
                title=f"Mini: {problem.task}",
                content=question(problem, 1),  # worded like the training questions
                platform=platform,
                question_id=f"mini-{number:03d}",
                contest_id=f"valley-mini-{number // 4:02d}",
                contest_day=date(2024, 8, 5) + timedelta(days=(number * 7) % 170),
                starter_code=problem.starter,
                taco_difficulty=t.difficulty,
                tests=tests,
                metadata=metadata,
            )
        )
    return rows


def mini_corpus() -> dict[str, list[dict]]:
    train, held_out = problems()
    return {
        "taco.jsonl": [taco_row(problem) for problem in train],
        "ocr2.jsonl": ocr2_rows(train),
        "lcb.jsonl": lcb_rows(held_out),
    }
