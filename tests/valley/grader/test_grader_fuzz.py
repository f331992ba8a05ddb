"""No program content becomes an infra_error (issue 21, item 4): whatever a program prints or
leaves in its value channel, comparing and decoding it gives that program a verdict of its own.
An infra_error leaves pass@1's denominator and is retried for ever, so a program that could
cause one could choose to leave the score. Hypothesis drives the content: first against the
comparison and decoding code directly (many examples), then through real sandboxes (a few
batches, each one program with one test per generated output)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import require_tool
from valley.grader.grading import grade_code
from valley.grader.problem import Problem, TestCase
from valley.grader.verdict import TEST_STATUSES, judge_test

# tokens LiveCodeBench's Decimal comparison and TACO's float comparison treat specially
SPECIAL_TOKENS = [
    "sNaN",
    "-sNaN",
    "NaN",
    "-nan",
    "Infinity",
    "-inf",
    "1e999999999",
    "-0",
    "0x10",
    "1_000",
    "١٢",
    "1.5",
    "2",
    "3",
    "1" * 5000,
    "\x00",
    "\ud800",
]
EXPECTED_STDOUT = "1.5\n2 3\nsNaN\n"
TAGS = ["int", "float", "fraction", "decimal", "tuple", "set", "dict", "opaque", "list", "nope"]

tokens = st.one_of(st.sampled_from(SPECIAL_TOKENS), st.text(max_size=20))
lines = st.lists(st.lists(tokens, max_size=4).map(" ".join), max_size=5).map("\n".join)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.sampled_from(SPECIAL_TOKENS),
)
payloads = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(TAGS), inner, min_size=1, max_size=2),
    ),
    max_leaves=12,
)
channel_texts = st.one_of(payloads.map(json.dumps), st.text(max_size=40), st.sampled_from(["", "[", "NaN", "{}"]))


def _judged(raw: dict, expected: str, mode: str) -> None:
    for judge in ("lcb", "taco"):
        status, detail = judge_test(judge, mode, raw, expected)
        assert status in TEST_STATUSES and isinstance(detail, str)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=lines)
def test_any_stdout_is_judged(text):
    _judged({"status": "exited", "stdout": text, "stderr": ""}, EXPECTED_STDOUT, "stdin")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=channel_texts)
def test_any_value_channel_is_judged(text):
    _judged({"status": "exited", "value_json": text, "stderr": ""}, "[1, 2]", "functional")


# ---- through the sandboxes: each example is one program, each generated output one of its tests

STDOUT_PROGRAM = """
import sys
OUTPUTS = {outputs!r}
sys.stdout.buffer.write(OUTPUTS[int(input())])
"""
CHANNEL_PROGRAM = """
import os
PAYLOADS = {payloads!r}
def f(index):
    os.write(3, PAYLOADS[index])
    os._exit(0)  # before the harness writes the returned value: the channel holds the raw payload
"""


def _grade_all(problem: Problem, code: str, sandbox: str) -> None:
    verdict = grade_code(problem, code, sandbox=sandbox, early_stop=False)
    assert verdict.status != "infra_error", verdict.detail
    assert len(verdict.tests) == len(problem.tests) and all(t.status in TEST_STATUSES for t in verdict.tests)


SANDBOXES = ["process", pytest.param("runsc", marks=pytest.mark.runsc)]


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", SANDBOXES)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(texts=st.lists(lines, min_size=1, max_size=8))
def test_no_stdout_becomes_an_infra_error_in_a_sandbox(sandbox, texts):
    if sandbox == "runsc":
        require_tool("runsc", "apt-get install -y runsc")
    outputs = [text.encode("utf-8", errors="surrogatepass") for text in texts]
    code = STDOUT_PROGRAM.format(outputs=outputs)
    for judge in ("lcb", "taco"):
        tests = tuple(TestCase(f"{i}\n", EXPECTED_STDOUT) for i in range(len(outputs)))
        _grade_all(Problem("stdout", tests, timeout_s=5, judge=judge), code, sandbox)


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", SANDBOXES)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(texts=st.lists(channel_texts, min_size=1, max_size=8))
def test_no_value_channel_payload_becomes_an_infra_error_in_a_sandbox(sandbox, texts):
    if sandbox == "runsc":
        require_tool("runsc", "apt-get install -y runsc")
    payloads = [text.encode("utf-8", errors="surrogatepass") for text in texts]
    code = CHANNEL_PROGRAM.format(payloads=payloads)
    for judge in ("lcb", "taco"):
        tests = tuple(TestCase(str(i), "[1, 2]") for i in range(len(payloads)))
        _grade_all(Problem("value", tests, fn_name="f", timeout_s=5, judge=judge), code, sandbox)


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_the_issues_two_outputs_are_the_programs_verdict(sandbox):
    """Issue 21 saw both become `infra_error` (retried for ever, out of pass@1): a stdout line
    LCB's Decimal comparison raises on (a signalling NaN), and value-channel payloads whose JSON
    type does not match their tag."""
    if sandbox == "runsc":
        require_tool("runsc", "apt-get install -y runsc")
    stdout = grade_code(Problem("snan", (TestCase("1\n", "1.5\n"),), timeout_s=5), "print('sNaN')\n", sandbox=sandbox)
    assert stdout.status == "wrong_answer", stdout.to_dict()
    payloads = [b'{"int": 5}', b'{"tuple": 5}', b'{"fraction": "1/2"}', b'{"dict": [[1]]}', b'{"float": 1}']
    tests = tuple(TestCase(str(i), "[1, 2]") for i in range(len(payloads)))
    value = grade_code(
        Problem("tags", tests, fn_name="f", timeout_s=5),
        CHANNEL_PROGRAM.format(payloads=payloads),
        sandbox=sandbox,
        early_stop=False,
    )
    assert [t.status for t in value.tests] == ["runtime_error"] * len(payloads), value.to_dict()
