"""Time limits judge the program's CPU time, so a verdict does not depend on how many programs
are graded beside it: the same seeded corpus, with slow-but-correct programs near the limit,
gets the same verdicts at --workers 1, 2 and 16 through the real `valley grade` CLI."""

from __future__ import annotations

import json

import pytest

from tests.conftest import require_tool
from tests.valley.grader import lcb_like
from valley.grader.grading import read_jsonl, read_verdicts

LIMIT_S = 1.0
SLEEPER = "```python\nimport time\ntime.sleep(60)\nprint(1)\n```"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # slow programs spend ~40% of the limit on the largest test: 16 of them at once on 2 cores
    # would take several times the limit of wall time
    paths = lcb_like.write(tmp_path_factory.mktemp("lcb-like"), problems=4, max_numbers=20_000, tests=3, timeout_s=LIMIT_S,
                           slow_fraction=0.4, kinds=("correct", "slow_correct", "slow_correct", "loop_on_large"))
    with open(paths["generations"], "a") as generations, open(paths["expected"], "a") as expected:
        generations.write(json.dumps({"question_id": "sum0", "sample_id": "sleeper", "response": SLEEPER}) + "\n")
        expected.write(json.dumps({"question_id": "sum0", "sample_id": "sleeper", "verdict": "timeout"}) + "\n")
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("sandbox,workers", [("process", (1, 2, 16)), pytest.param("runsc", (2, 16), marks=pytest.mark.runsc)])
def test_verdicts_do_not_depend_on_the_number_of_workers(valley, corpus, tmp_path, sandbox, workers):
    if sandbox == "runsc":
        require_tool("runsc", "apt-get install -y runsc")
    expected = {(e["question_id"], e["sample_id"]): e["verdict"] for e in read_jsonl(corpus["expected"])}
    for count in workers:
        out = tmp_path / f"verdicts-{count}.jsonl"
        valley(["grade", "--problems", corpus["problems"], "--generations", corpus["generations"], "--out", out,
                "--sandbox", sandbox, "--workers", count, "--timeout-s", LIMIT_S])
        rows = read_verdicts(out)
        got = {key: row["verdict"] for key, row in rows.items()}
        assert got == expected, (count, {k: (v, got[k], rows[k]["tests"][-1]) for k, v in expected.items() if got[k] != v})
        for key, row in rows.items():
            assert all(t["time_s"] > 0 and t["cpu_s"] >= 0 for t in row["tests"] if t["status"] != "compile_error"), row
            if "slow_correct" in key[1]:  # they really are near the limit
                assert max(t["cpu_s"] for t in row["tests"]) > 0.3 * LIMIT_S, row
            if "loop_on_large" in key[1]:
                assert row["tests"][-1]["cpu_s"] >= 0.9 * LIMIT_S and "CPU time limit" in row["tests"][-1]["detail"], row
        sleeper = rows[("sum0", "sleeper")]["tests"][0]
        assert "wall-clock guard" in sleeper["detail"] and sleeper["cpu_s"] < 0.5 * LIMIT_S and sleeper["time_s"] >= 0.9 * 3 * LIMIT_S
