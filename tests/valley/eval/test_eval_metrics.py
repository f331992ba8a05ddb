"""The paper's metrics against hand-computed values, and the bootstrap's coverage."""

import math

import numpy as np
import pytest

from valley.eval.metrics import (
    bootstrap_ci,
    eval_metrics,
    paired_bootstrap,
    per_problem_pass,
    per_problem_table,
    starts_with_think,
)


def verdict(qid, sid, passed):
    return {"question_id": qid, "sample_id": sid, "passed": passed}


def gen(qid, sid, response, finish="stop", tokens=10):
    return {"question_id": qid, "sample_id": sid, "response": response, "finish_reason": finish, "num_tokens": tokens}


PROBLEMS = [
    {"question_id": "a", "difficulty": "easy"},
    {"question_id": "b", "difficulty": "easy"},
    {"question_id": "c", "difficulty": "hard"},
]


def test_pass_at_1_is_the_mean_over_problems_of_passed_over_n():
    verdicts = [
        verdict("a", 0, True),
        verdict("a", 1, True),
        verdict("a", 2, False),
        verdict("a", 3, True),
        verdict("b", 0, False),
        verdict("b", 1, False),
        verdict("b", 2, False),
        verdict("b", 3, True),
        verdict("c", 0, False),
        verdict("c", 1, False),
        verdict("c", 2, False),
        verdict("c", 3, False),
    ]
    generations = [gen(v["question_id"], v["sample_id"], "x") for v in verdicts]
    metrics = eval_metrics(PROBLEMS, generations, verdicts)
    # a: 3/4, b: 1/4, c: 0/4 -> (0.75 + 0.25 + 0) / 3
    assert metrics["pass_at_1"] == pytest.approx(1 / 3)
    assert metrics["pass_at_1_easy"] == pytest.approx(0.5)
    assert metrics["pass_at_1_hard"] == 0.0
    assert metrics["pass_at_1_ci_low"] <= metrics["pass_at_1"] <= metrics["pass_at_1_ci_high"]
    assert metrics["problems"] == 3 and metrics["responses"] == 12


def test_infrastructure_failures_are_counted_not_scored():
    verdicts = [
        verdict("a", 0, True),
        verdict("a", 1, None),
        {**verdict("b", 0, False), "verdict": "infra_error"},
        verdict("b", 1, False),
    ]
    assert per_problem_pass(verdicts) == {"a": 1.0, "b": 0.0}
    metrics = eval_metrics(PROBLEMS[:2], [gen("a", 0, "")], verdicts)
    assert metrics["infra_failures"] == 2 and metrics["pass_at_1"] == 0.5
    assert metrics["infra_problems_excluded"] == 0  # both problems keep a scored sample
    only_infra = eval_metrics([], [], [*verdicts, {**verdict("c", 0, False), "verdict": "infra_error"}])
    assert only_infra["infra_failures"] == 3 and only_infra["infra_problems_excluded"] == 1


def test_programs_failing_on_a_module_the_grader_lacks_are_counted():
    missing = {
        **verdict("a", 0, False),
        "verdict": "runtime_error",
        "tests": [{"index": 0, "status": "runtime_error", "detail": "ModuleNotFoundError: No module named 'numpy'"}],
    }
    assert eval_metrics(PROBLEMS[:1], [], [missing, verdict("a", 1, True)])["missing_module_failures"] == 1


@pytest.mark.parametrize(
    "response,starts",
    [
        ("<think>plan</think>code", True),
        ("  \n\t<think>indented", True),  # leading whitespace does not count against it
        ("Sure. <think>late</think>", False),  # must begin with the tag
        ("<think", False),
        ("<THINK>", False),
        ("", False),
        ("   ", False),
    ],
)
def test_think_tag_after_leading_whitespace(response, starts):
    assert starts_with_think(response) is starts


def test_completion_and_think_rates_count_truncated_and_empty_outputs():
    generations = [
        gen("a", 0, "<think>x</think>\n```python\nprint(1)\n```", "stop", 20),
        gen("a", 1, "<think>never closes", "length", 100),  # truncated: not completed, still a think tag
        gen("b", 0, "", "stop", 0),  # empty but ended within budget: completed
        gen("b", 1, " \n<think>y</think>", "stop", 10),
    ]
    metrics = eval_metrics(PROBLEMS[:2], generations, [])
    assert metrics["completion_rate"] == 0.75
    assert metrics["truncation_rate"] == 0.25
    assert metrics["think_tag_rate"] == 0.75
    assert metrics["mean_response_tokens"] == pytest.approx(130 / 4)
    assert math.isnan(metrics["pass_at_1"])


def test_bootstrap_ci_is_degenerate_for_constant_scores_and_seeded():
    assert bootstrap_ci([0.5] * 20) == (0.5, 0.5)
    values = np.random.default_rng(1).random(50)
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)


def test_bootstrap_ci_covers_the_true_mean_about_95_percent_of_the_time():
    """Synthetic benchmark: 200 problems whose true pass rates come from a Beta(2, 5); over 200
    simulated benchmarks the 95% interval should contain the true mean close to 95% of the time."""
    rng = np.random.default_rng(0)
    true_mean = 2 / 7
    covered = 0
    trials = 200
    for trial in range(trials):
        rates = rng.beta(2, 5, size=200)
        passed = rng.binomial(4, rates) / 4  # n=4 samples per problem, as the study evaluates
        low, high = bootstrap_ci(passed, seed=trial, resamples=2000)
        covered += low <= true_mean <= high
    assert 0.90 <= covered / trials <= 0.99


def test_paired_bootstrap_detects_a_shift_and_not_a_tie():
    rng = np.random.default_rng(3)
    base = {f"q{i}": float(x) for i, x in enumerate(rng.random(100))}
    better = {q: min(1.0, s + 0.2) for q, s in base.items()}
    shifted = paired_bootstrap(better, base, names=("easy-4k", "hard-4k"))
    assert shifted.problems == 100 and shifted.ci_low > 0 and shifted.p_not_above < 0.01
    same = paired_bootstrap(base, dict(base), names=("correct-6k", "incorrect-6k"))
    assert same.difference == 0 and same.ci_low == same.ci_high == 0
    with pytest.raises(ValueError, match="share no problems"):
        paired_bootstrap({"x": 1.0}, {"y": 0.0})


def test_per_problem_table_rows():
    generations = [gen("a", 0, "<think>", "length"), gen("a", 1, "ok")]
    verdicts = [verdict("a", 0, False), verdict("a", 1, True)]
    rows = per_problem_table(PROBLEMS[:2], generations, verdicts)
    assert rows[0] | {} == {
        "question_id": "a",
        "difficulty": "easy",
        "platform": None,
        "contest_date": None,
        "samples": 2,
        "passed": 1,
        "pass_at_1": 0.5,
        "completed": 1,
        "think_tag": 1,
    }
    assert rows[1]["samples"] == 0 and rows[1]["pass_at_1"] is None
