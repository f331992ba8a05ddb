"""Problems and their tests, built from LiveCodeBench and TACO rows in the datasets' own schemas."""

from __future__ import annotations

import json
from dataclasses import dataclass

from valley.grader.lcb import decode_private_tests

LCB_TIMEOUT_S = 6.0  # lcb_runner/evaluation/testing_util.py default
TACO_TIMEOUT_S = 4.0  # FlagOpen/TACO metrics/testing_util.py TIMEOUT


@dataclass(frozen=True)
class TestCase:
    input: str
    output: str  # stdin: expected stdout; functional: JSON of the expected return value


@dataclass(frozen=True)
class Problem:
    question_id: str
    tests: tuple[TestCase, ...]
    fn_name: str | None = None  # set: functional (call-based); None: stdin
    timeout_s: float = LCB_TIMEOUT_S
    judge: str = "lcb"  # "lcb" or "taco": whose output comparison applies

    @property
    def mode(self) -> str:
        return "functional" if self.fn_name else "stdin"

    def to_dict(self) -> dict:
        return {
            "question_id": self.question_id,
            "tests": [[t.input, t.output] for t in self.tests],
            "fn_name": self.fn_name,
            "timeout_s": self.timeout_s,
            "judge": self.judge,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Problem":
        return cls(
            question_id=data["question_id"],
            tests=tuple(TestCase(i, o) for i, o in data["tests"]),
            fn_name=data.get("fn_name"),
            timeout_s=data.get("timeout_s", LCB_TIMEOUT_S),
            judge=data.get("judge", "lcb"),
        )


def from_lcb_row(row: dict, max_test_bytes: int | None = None) -> Problem:
    """Public then private tests, as `get_evaluation_sample` concatenates them (the packed private
    tests inflated to at most `max_test_bytes`)."""
    public = (
        json.loads(row["public_test_cases"]) if isinstance(row["public_test_cases"], str) else row["public_test_cases"]
    )
    private = row.get("private_test_cases") or "[]"
    private = decode_private_tests(private, max_test_bytes) if isinstance(private, str) else private
    metadata = row.get("metadata") or "{}"
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    for field, cases in (("public_test_cases", public), ("private_test_cases", private)):
        if not isinstance(cases, list) or not all(
            isinstance(case, dict) and isinstance(case.get("input"), str) and isinstance(case.get("output"), str)
            for case in cases
        ):
            raise ValueError(f"{field}: a list of {{input, output}} objects with string values")
    if not isinstance(metadata, dict):
        raise ValueError("metadata: a JSON object")
    cases = [*public, *private]
    functional = any(case.get("testtype") == "functional" for case in cases)
    return Problem(
        question_id=str(row["question_id"]),
        tests=tuple(TestCase(case["input"], case["output"]) for case in cases),
        fn_name=metadata.get("func_name") if functional else None,
        timeout_s=LCB_TIMEOUT_S,
    )


def from_taco_row(row: dict, question_id: str) -> Problem:
    """TACO's `input_output`: call-based when it names `fn_name`, else standard input.

    Call-based inputs are argument lists and outputs values; they are stored here as one JSON
    argument per line and a JSON value, the same shape as LiveCodeBench's functional tests.
    """
    spec = json.loads(row["input_output"]) if isinstance(row["input_output"], str) else row["input_output"]
    fn_name = spec.get("fn_name")
    tests = []
    for given, expected in zip(spec["inputs"], spec["outputs"], strict=False):
        if fn_name:
            args = given if isinstance(given, list) else [given]
            tests.append(TestCase("\n".join(json.dumps(a) for a in args), json.dumps(expected)))
        else:
            tests.append(TestCase(_text(given), _text(expected)))
    return Problem(question_id=question_id, tests=tuple(tests), fn_name=fn_name, timeout_s=TACO_TIMEOUT_S, judge="taco")


def _text(value) -> str:
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)
