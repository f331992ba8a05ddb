"""The paper's three metrics, with uncertainty over problems.

- pass@1: mean over problems of passed/n (LCB's estimator at k=1), with a percentile
  bootstrap confidence interval that resamples problems (the unit that varies between
  benchmarks), seeded so a rerun prints the same interval;
- completion rate: share of responses that finished within the token budget
  (vLLM finish_reason "stop"; "length" means the budget cut them off);
- think-tag rate: share of responses that begin with `<think>` after leading whitespace,
  measured on the raw text.

Grader verdicts `infra_error` (the sandbox could not run the program; `passed` null in older
rows) are counted, never scored as a pass or a fail.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95


def is_infra_failure(verdict: dict) -> bool:
    return verdict.get("verdict") == "infra_error" or verdict.get("passed") is None


def failed_on_missing_module(verdict: dict) -> bool:
    tests = verdict.get("tests") or []
    return bool(tests) and "ModuleNotFoundError" in (tests[-1].get("detail") or "")


def per_problem_pass(verdicts: list[dict]) -> dict[str, float]:
    """question_id -> passed/n over that problem's scored samples."""
    passed: dict[str, list[bool]] = defaultdict(list)
    for verdict in verdicts:
        if not is_infra_failure(verdict):
            passed[verdict["question_id"]].append(bool(verdict["passed"]))
    return {qid: sum(flags) / len(flags) for qid, flags in sorted(passed.items())}


def bootstrap_ci(
    values, *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (one value per problem)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Contrast:
    """Paired difference of per-problem pass@1, `a - b`, over the problems both runs share."""

    a: str
    b: str
    problems: int
    difference: float
    ci_low: float
    ci_high: float
    #: share of resamples where the difference is <= 0 (one-sided: is a really above b?)
    p_not_above: float

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def paired_bootstrap(
    a: dict[str, float],
    b: dict[str, float],
    *,
    names=("a", "b"),
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Contrast:
    """Bootstrap the mean per-problem difference, resampling problems jointly for both runs."""
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ValueError(f"{names[0]} and {names[1]} share no problems to compare")
    diffs = np.array([a[q] - b[q] for q in shared])
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.size, size=(resamples, diffs.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Contrast(
        names[0], names[1], len(shared), float(diffs.mean()), float(low), float(high), float((means <= 0).mean())
    )


def completed(generation: dict) -> bool:
    return generation["finish_reason"] == "stop"


def starts_with_think(response: str) -> bool:
    return response.lstrip().startswith("<think>")


def eval_metrics(
    problems: list[dict], generations: list[dict], verdicts: list[dict], *, seed: int = 0
) -> dict[str, float]:
    """Every metric logged to a run, flat (MLflow metric names)."""
    scores = per_problem_pass(verdicts)
    low, high = bootstrap_ci(list(scores.values()), seed=seed)
    metrics = {
        "pass_at_1": float(np.mean(list(scores.values()))) if scores else float("nan"),
        "pass_at_1_ci_low": low,
        "pass_at_1_ci_high": high,
        "completion_rate": _share(completed(g) for g in generations),
        **_rate_ci("completion_rate", generations, completed, seed),
        "think_tag_rate": _share(starts_with_think(g["response"]) for g in generations),
        **_rate_ci("think_tag_rate", generations, lambda g: starts_with_think(g["response"]), seed),
        "truncation_rate": _share(g["finish_reason"] == "length" for g in generations),
        "mean_response_tokens": float(np.mean([g["num_tokens"] for g in generations])) if generations else float("nan"),
        "problems": float(len(problems)),
        "problems_scored": float(len(scores)),
        "responses": float(len(generations)),
        # programs the grader could not run, and problems left with no graded program at all:
        # both leave pass@1's denominator (`valley eval` refuses them unless --allow-infra-errors)
        "infra_failures": float(sum(map(is_infra_failure, verdicts))),
        "infra_problems_excluded": float(len({v["question_id"] for v in verdicts} - set(scores))),
        # programs that failed importing a module the grader lacks (numpy, sortedcontainers...; LCB's
        # environment has them): the measured cost of the stdlib-only grader, see docs/grader.md
        "missing_module_failures": float(sum(map(failed_on_missing_module, verdicts))),
        # responses with no fenced code after the reasoning: scored as fails, tracked for health
        "no_code_rate": _share(v.get("verdict") == "no_code" for v in verdicts),
    }
    difficulty = {p["question_id"]: p.get("difficulty") or "unknown" for p in problems}
    for level in sorted(set(difficulty.values())):
        level_scores = [s for q, s in scores.items() if difficulty.get(q) == level]
        if level_scores:
            metrics[f"pass_at_1_{level}"] = float(np.mean(level_scores))
    return metrics


def per_problem_table(problems: list[dict], generations: list[dict], verdicts: list[dict]) -> list[dict]:
    """One row per problem: the artifact `compare` pairs runs on."""
    scores = per_problem_pass(verdicts)
    by_problem: dict[str, list[dict]] = defaultdict(list)
    for g in generations:
        by_problem[g["question_id"]].append(g)
    passed: dict[str, int] = defaultdict(int)
    for v in verdicts:
        passed[v["question_id"]] += bool(v.get("passed"))
    rows = []
    for problem in problems:
        qid = problem["question_id"]
        gens = by_problem.get(qid, [])
        rows.append(
            {
                "question_id": qid,
                "difficulty": problem.get("difficulty"),
                "platform": problem.get("platform"),
                "contest_date": problem.get("contest_date"),
                "samples": len(gens),
                "passed": passed[qid],
                "pass_at_1": scores.get(qid),
                "completed": sum(completed(g) for g in gens),
                "think_tag": sum(starts_with_think(g["response"]) for g in gens),
            }
        )
    return rows


def _rate_ci(name: str, generations: list[dict], flag, seed: int) -> dict[str, float]:
    """The 95% CI of a response rate, resampling problems as pass@1's does (a problem's samples
    stay together): `<name>_ci_low`, `<name>_ci_high`."""
    by_problem: dict[str, list[bool]] = defaultdict(list)
    for g in generations:
        by_problem[g["question_id"]].append(bool(flag(g)))
    low, high = bootstrap_ci([sum(flags) / len(flags) for flags in by_problem.values()], seed=seed)
    return {f"{name}_ci_low": low, f"{name}_ci_high": high}


def _share(flags) -> float:
    flags = list(flags)
    return sum(map(bool, flags)) / len(flags) if flags else float("nan")
