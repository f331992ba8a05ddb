"""Verdicts, and the output comparisons of LiveCodeBench (reference) and TACO (labelling)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation

from valley.grader.values import decode_reply

TEST_STATUSES = ("pass", "wrong_answer", "timeout", "runtime_error", "compile_error")


@dataclass(frozen=True)
class TestResult:
    index: int
    status: str
    time_s: float | None = None  # wall clock, fork to exit
    cpu_s: float | None = None  # what the time limit judges (docs/grader.md, "Time limits")
    max_rss_kb: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    """One graded response. `infra_error` means the grader could not run it: neither pass nor fail."""

    status: str
    tests: tuple[TestResult, ...] = ()
    total_tests: int = 0
    sandbox: str = ""
    detail: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "verdict": self.status,
            "total_tests": self.total_tests,
            "sandbox": self.sandbox,
            "detail": self.detail,
            "tests": [asdict(t) for t in self.tests],
            **self.extra,
        }


def program_status(tests: list[TestResult], total: int) -> str:
    for test in tests:
        if test.status != "pass":
            return test.status
    return "pass" if len(tests) == total else "infra_error"


# ---- LiveCodeBench (lcb_runner/evaluation/testing_util.py). The comparisons below are exactly
# LCB's and TACO's, written so that what they allocate is bounded by the expected output (trusted),
# not by the program's: a line or token count is checked at C speed before anything is split.


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(tokens: list[str]) -> list[Decimal] | None:
    try:
        return [Decimal(token) for token in tokens]
    except (InvalidOperation, ValueError):
        return None


def lcb_stdout_matches(output: str, expected: str) -> bool:
    """Line counts equal; each line equal after strip, or equal as Decimal tokens."""
    want = _stripped_lines(expected)
    output = output.strip()
    if output.count("\n") + 1 != len(want):
        return False
    for got_line, want_line in zip((line.strip() for line in output.split("\n")), want, strict=True):
        if got_line == want_line:
            continue
        want_tokens = want_line.split()
        got_tokens = got_line.split(None, len(want_tokens))  # more tokens than expected: one left over
        if len(got_tokens) != len(want_tokens):
            return False
        got_numbers, want_numbers = _decimals(got_tokens), _decimals(want_tokens)
        if got_numbers is None or want_numbers is None or got_numbers != want_numbers:
            return False
    return True


def lcb_value_matches(value, expected_json: str) -> bool:
    """`prediction == json.loads(output)` after a top-level tuple becomes a list."""
    if isinstance(value, tuple):
        value = list(value)
    try:
        return bool(value == json.loads(expected_json))
    except Exception:  # a pathological comparison is a wrong answer, never a grader crash
        return False


# ---- TACO (FlagOpen/TACO metrics/testing_util.py), used only to label training responses


def taco_stdout_matches(output: str, expected: str) -> bool:
    """TACO's checks in order (the whole text stripped, its non-empty stripped lines, its
    whitespace tokens, then the tokens as floats within 1e-5): each of the first three implies
    the tokens are equal, so equal tokens or close floats decide."""
    want = expected.split()
    got = output.split(None, len(want))  # more tokens than expected: one left over, never equal
    if got == want:
        return True
    if len(got) != len(want):
        return False
    try:
        got_floats, want_floats = [float(t) for t in got], [float(t) for t in want]
    except ValueError:
        return False
    return all(math.isclose(g, w, rel_tol=1e-5, abs_tol=1e-8) for g, w in zip(got_floats, want_floats, strict=True))


def taco_value_matches(value, expected_json: str) -> bool:
    if isinstance(value, tuple):
        value = list(value)
    try:
        expected = json.loads(expected_json)
        if value == expected:
            return True
        if isinstance(expected, list) and expected:
            if value == expected[0]:
                return True
            if isinstance(value, list) and value and isinstance(value[0], tuple):
                return [list(x) for x in value] == expected[0]
    except Exception:
        return False
    return False


def judge_test(judge: str, mode: str, raw: dict, expected: str) -> tuple[str, str]:
    """Turn one harness result into (status, detail). Whatever the program printed or returned,
    this gives it a verdict: an output that cannot be decoded or compared is the program's own
    runtime error or wrong answer, never an exception that would make it an infra_error."""
    status = raw["status"]
    if status == "output_limit":
        return "wrong_answer", f"output over the size cap; {raw.get('stderr', '')[-400:]}".rstrip("; ")
    if status == "timeout":
        limit = {"wall_limit": "wall-clock guard (a sleeping or blocked program)"}.get(
            raw.get("limit"), "CPU time limit"
        )
        return "timeout", f"{limit}; {raw.get('stderr', '')[-400:]}".rstrip("; ")
    if status != "exited":
        return status, raw.get("stderr", "")[-500:]
    try:
        if mode == "functional":
            status, value, why = decode_reply(raw.get("value_json", ""), expected)
            if status != "exited":
                return status, why
            ok = (lcb_value_matches if judge == "lcb" else taco_value_matches)(value, expected)
        else:
            ok = (lcb_stdout_matches if judge == "lcb" else taco_stdout_matches)(raw["stdout"], expected)
    except Exception as error:  # a last wall: nothing a program produced may raise out of here
        return "wrong_answer", f"the output could not be compared ({type(error).__name__})"
    return ("pass", "") if ok else ("wrong_answer", "")
