"""LiveCodeBench/TACO semantics: extraction, output comparison, problem loading, pass@k."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy
import pytest

from valley.grader.extract import extract_code, strip_think
from valley.grader.grading import pass_at_k, score
from valley.grader.harness import encode_value
from valley.grader.lcb import encode_private_tests
from valley.grader.problem import LCB_TIMEOUT_S, TACO_TIMEOUT_S, from_lcb_row, from_taco_row
from valley.grader.values import Opaque, decode_value
from valley.grader.verdict import lcb_stdout_matches, lcb_value_matches, taco_stdout_matches, taco_value_matches


def test_extract_takes_the_last_block_after_dropping_the_reasoning():
    response = "<think>\n```python\nprint('decoy')\n```\n</think>\nAnswer:\n```python\nprint('real')\n```\nDone."
    assert extract_code(response) == "print('real')"


def test_extract_follows_lcb_last_two_fence_lines():
    assert extract_code("```python\na = 1\n```\ntext\n```python\nb = 2\n```") == "b = 2"
    assert extract_code("no fences at all") == ""
    assert extract_code("```python\nunterminated") == ""
    # LCB's rule is line based: the text between the last two lines holding a fence
    assert extract_code("```\nx = 1\n```") == "x = 1"


def test_reasoning_cut_off_has_no_answer_and_prefilled_think_is_dropped():
    assert extract_code("<think>\n```python\nprint(1)\n```\nstill thinking") == ""
    assert strip_think("reasoning without opening tag</think>answer") == "answer"


@pytest.mark.parametrize(
    "output, expected, matches",
    [
        ("3\n", "3", True),
        ("  1 2 3  \n\n", "1 2 3\n", True),
        ("1.0\n", "1", True),  # Decimal equality: 1.0 == 1
        ("2.500000", "2.5", True),
        ("1e2", "100", True),
        ("0.333333", "0.3333333", False),  # no epsilon in LCB
        ("1 2", "1  2", True),  # tokens compared after split
        ("1\n2", "1 2", False),  # line counts must match
        ("YES", "yes", False),
        ("", "", True),
        ("a b", "a  c", False),
    ],
)
def test_lcb_stdout_comparison(output, expected, matches):
    assert lcb_stdout_matches(output, expected) is matches


def test_lcb_value_comparison_converts_only_a_top_level_tuple():
    assert lcb_value_matches((1, 2), "[1, 2]")
    assert not lcb_value_matches([(1, 2)], "[[1, 2]]")
    assert lcb_value_matches(3.0, "3")
    assert lcb_value_matches(True, "true")
    assert not lcb_value_matches("3", "3")
    assert not lcb_value_matches(Opaque("Weird"), "1")


def test_taco_comparison_is_more_lenient():
    assert taco_stdout_matches("0.3333333", "0.33333334")
    assert taco_stdout_matches("1\n\n2\n", "1\n2")
    assert not taco_stdout_matches("1 3", "1 2")
    assert taco_value_matches(5, "[5]")  # TACO wraps call-based outputs in a list
    assert taco_value_matches([(1, 2)], "[[[1, 2]]]")


def test_values_cross_the_sandbox_boundary_with_their_types():
    value = {"t": (1, [2, (3,)]), "big": 2**80, "huge": 2**14000, "f": float("inf"), "n": None}
    decoded = decode_value(json.loads(json.dumps(encode_value(value))))
    assert decoded == value
    assert isinstance(decoded["t"], tuple) and isinstance(decoded["t"][1][1], tuple)
    # a set, or a dict with a key that is not a string, equals no JSON value: never hashed, equal to nothing
    for unequal in ({1, 2}, {4: None}, {"s": {1}}):
        assert isinstance(decode_value(json.loads(json.dumps(encode_value(unequal)))), (Opaque, dict))
        assert not lcb_value_matches(decode_value(json.loads(json.dumps(encode_value(unequal)))), "[1, 2]")
    assert math.isnan(decode_value(encode_value(float("nan"))))
    assert isinstance(decode_value(encode_value(object())), Opaque)


def lcb_row(tests: list[dict], func_name: str | None = None) -> dict:
    return {
        "question_id": "abc100_a",
        "question_title": "t",
        "question_content": "c",
        "platform": "atcoder",
        "contest_id": "abc100",
        "contest_date": "2024-09-01T00:00:00",
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps(tests[:1]),
        "private_test_cases": encode_private_tests(tests[1:]),
        "metadata": json.dumps({"func_name": func_name} if func_name else {}),
    }


def test_lcb_row_concatenates_public_then_decoded_private_tests():
    tests = [{"input": f"{i}\n", "output": f"{2 * i}\n", "testtype": "stdin"} for i in range(4)]
    problem = from_lcb_row(lcb_row(tests))
    assert problem.mode == "stdin" and problem.fn_name is None
    assert [t.input for t in problem.tests] == ["0\n", "1\n", "2\n", "3\n"]
    assert problem.timeout_s == LCB_TIMEOUT_S


def test_lcb_functional_row_uses_metadata_func_name():
    tests = [{"input": "[1, 2]\n3", "output": "6", "testtype": "functional"}] * 2
    problem = from_lcb_row(lcb_row(tests, func_name="addAll"))
    assert problem.mode == "functional" and problem.fn_name == "addAll"


def test_taco_rows_are_call_based_with_fn_name_else_stdin():
    stdin = from_taco_row({"input_output": json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})}, "taco-1")
    assert stdin.mode == "stdin" and stdin.timeout_s == TACO_TIMEOUT_S and stdin.judge == "taco"
    call = from_taco_row(
        {"input_output": json.dumps({"fn_name": "add", "inputs": [[1, [2, 3]]], "outputs": [[6]]})}, "taco-2"
    )
    assert call.mode == "functional"
    assert call.tests[0].input == "1\n[2, 3]" and call.tests[0].output == "[6]"


def test_pass_at_k_matches_hand_computed_values():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    # 1 - C(7,2)/C(10,2) = 1 - 21/45
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - 21 / 45)
    # 1 - C(5,5)/C(10,5) = 1 - 1/252
    assert pass_at_k(10, 5, 5) == pytest.approx(1 - 1 / 252)
    assert pass_at_k(10, 8, 5) == 1.0  # fewer than k failures: every k-subset holds a pass
    assert pass_at_k(1, 1, 1) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_score_averages_over_problems_and_sets_infra_errors_aside():
    rows = [
        {"question_id": "a", "passed": True, "verdict": "pass"},
        {"question_id": "a", "passed": False, "verdict": "wrong_answer"},
        {"question_id": "b", "passed": False, "verdict": "timeout"},
        {"question_id": "b", "passed": False, "verdict": "infra_error"},
    ]
    assert score(rows, ks=(1, 2)) == {"problems": 2, "infra_errors": 1, "pass@1": 0.25, "pass@2": 1.0}


def test_numpy_scalars_compare_like_python_numbers_arrays_do_not():
    assert lcb_value_matches(decode_value(encode_value(numpy.int64(3))), "3")
    assert not lcb_value_matches(decode_value(encode_value(numpy.array([1, 2]))), "[1, 2]")


def test_taco_problems_grade_call_based_and_stdin_with_their_own_comparison():
    from valley.grader.grading import grade

    call = from_taco_row(
        {"input_output": json.dumps({"fn_name": "pair", "inputs": [[1, 2], [3, 4]], "outputs": [[[1, 2]], [[3, 4]]]})},
        "taco-call",
    )
    verdict = grade(call, "```python\ndef pair(a, b):\n    return (a, b)\n```", sandbox="process")
    assert verdict.passed, verdict
    floats = from_taco_row(
        {"input_output": json.dumps({"inputs": ["3\n", "7\n"], "outputs": ["0.3333333\n", "0.1428571\n"]})},
        "taco-float",
    )
    response = "```python\nprint(1 / int(input()))\n```"
    assert grade(floats, response, sandbox="process").passed  # TACO: float closeness
    lcb_view = dataclasses.replace(floats, judge="lcb")
    assert grade(lcb_view, response, sandbox="process").status == "wrong_answer"  # LCB: exact decimals


def test_without_early_stop_every_test_runs():
    from valley.grader.grading import grade
    from valley.grader.problem import Problem, TestCase

    problem = Problem("three", tuple(TestCase(f"{i}\n", f"{i}\n") for i in (1, 2, 3)))
    response = "```python\nn = int(input())\nprint(n if n != 2 else 0)\n```"
    assert [t.status for t in grade(problem, response, sandbox="process").tests] == ["pass", "wrong_answer"]
    verdict = grade(problem, response, sandbox="process", early_stop=False)
    assert verdict.status == "wrong_answer" and [t.status for t in verdict.tests] == ["pass", "wrong_answer", "pass"]
