"""What a program's output may cost the grader (issue 21, item 5): receiving, decoding and
comparing it stays within a stated multiple of its size in memory (docs/grader.md, "Budgets")
and linear in time, and an output past the budget is that program's verdict. Each case grades
one hostile program in a fresh grader process (hostile_outputs.py); a quadratic decoder hits
the grader's CPU limit and fails the test instead of running for an hour.
tests/benchmarks/bench_grader.py --only hostile prints the same costs per MiB."""

from __future__ import annotations

import pytest

from tests.valley.grader.hostile_outputs import CASES, grader_cost

MEMORY_MULTIPLE = 4  # the stated bound: the grader's peak memory grows by at most this many times the output


@pytest.mark.slow
@pytest.mark.parametrize("case", [name for name in CASES if name.startswith("value")])
def test_a_hostile_return_value_costs_the_grader_a_bounded_multiple_of_its_size(case):
    functional, code, size_mb = CASES[case]
    outcome = grader_cost(functional, code)
    assert outcome["status"] == "wrong_answer", outcome
    assert outcome["rss_growth_mb"] < MEMORY_MULTIPLE * size_mb + 16, outcome


@pytest.mark.slow
@pytest.mark.parametrize("judge", ["lcb", "taco"])
@pytest.mark.parametrize("case", [name for name in CASES if name.startswith("stdout")])
def test_a_hostile_stdout_costs_the_grader_a_bounded_multiple_of_its_size(case, judge):
    functional, code, size_mb = CASES[case]
    outcome = grader_cost(functional, code, judge)
    assert outcome["status"] == "wrong_answer", outcome
    assert outcome["rss_growth_mb"] < MEMORY_MULTIPLE * size_mb + 16, outcome
