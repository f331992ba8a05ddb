"""The project's grading corpus (tests/valley/grader/corpus.py) through the real `valley grade` CLI,
under both sandboxes; plus batch resume."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.valley.grader.corpus import write_corpus
from valley.grader.grading import grade_batch, load_problems, read_jsonl, read_verdicts
from valley.grader.pool import POOL

CORPUS_TIMEOUT_S = 2  # the corpus's timeouts are infinite loops; its correct programs need < 0.3 s


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def test_corpus_covers_the_required_cases(corpus):
    rows, generations, expected = (list(read_jsonl(corpus[name])) for name in ("problems", "generations", "expected"))
    assert len(rows) >= 30 and len(generations) >= 300
    modes = Counter("functional" if json.loads(r["metadata"]).get("func_name") else "stdin" for r in rows)
    assert modes["stdin"] >= 15 and modes["functional"] >= 10
    verdicts = Counter(e["verdict"] for e in expected)
    assert set(verdicts) == {"pass", "wrong_answer", "timeout", "runtime_error", "compile_error", "no_code"}
    kinds = {g["sample_id"] for g in generations}
    for kind in (
        "partial",
        "decoy_in_think",
        "float_rounded",
        "recursion_too_deep",
        "quadratic",
        "comma_format",
        "syntax_error",
    ):
        assert kind in kinds


@pytest.mark.slow
@pytest.mark.timeout(600)  # 430 programs; under runsc each now starts a zygote of its own (0.15-0.45 s)
@pytest.mark.parametrize("sandbox", ["process", pytest.param("runsc", marks=pytest.mark.runsc)])
def test_corpus_verdicts_through_the_cli(valley, corpus, tmp_path, sandbox):
    if sandbox == "runsc":
        require_tool("runsc", "apt-get install -y runsc")
    out = tmp_path / "verdicts.jsonl"
    result = valley(
        [
            "grade",
            "--problems",
            corpus["problems"],
            "--generations",
            corpus["generations"],
            "--out",
            out,
            "--sandbox",
            sandbox,
            "--workers",
            "2",
            "--timeout-s",
            CORPUS_TIMEOUT_S,
        ]
    )
    assert f"({sandbox})" in result.stdout
    got = read_verdicts(out)
    expected = {(e["question_id"], e["sample_id"]): e["verdict"] for e in read_jsonl(corpus["expected"])}
    assert set(got) == set(expected)
    wrong = {
        key: (want, got[key]["verdict"], got[key]["tests"][-1:])
        for key, want in expected.items()
        if got[key]["verdict"] != want
    }
    assert not wrong
    for row in got.values():
        assert row["passed"] is (row["verdict"] == "pass") and row["sandbox"] == sandbox
    partial = next(r for k, r in got.items() if k[1] == "partial")
    assert [t["status"] for t in partial["tests"]] == ["pass", "wrong_answer"]  # early stop at the first failure
    passing = next(r for k, r in got.items() if k == ("pairs1", "correct"))
    assert all(t["time_s"] > 0 and t["max_rss_kb"] > 0 for t in passing["tests"])


def test_an_interrupted_batch_resumes_where_it_stopped(corpus, tmp_path):
    problems = load_problems(corpus["problems"])
    generations = [g for g in read_jsonl(corpus["generations"]) if g["question_id"] in ("sum1", "lc_total2")]
    out = tmp_path / "verdicts.jsonl"
    grade_batch(problems, generations[:5], out, sandbox="process", workers=2, progress=False)
    finished = out.read_text()
    # the process died while writing a sixth row: half a line, no newline
    out.write_text(finished + '{"question_id": "sum1", "sample_id": "trunc')
    summary = grade_batch(problems, generations, out, sandbox="process", workers=2, progress=False)
    text = out.read_text()
    assert text.startswith(finished)  # nothing already graded was redone or rewritten
    rows = [json.loads(line) for line in text.splitlines()]
    keys = [(r["question_id"], r["sample_id"]) for r in rows]
    assert len(keys) == len(set(keys)) == len(generations)
    assert summary["problems"] == 2
    again = grade_batch(problems, generations, out, sandbox="process", workers=2, progress=False)
    assert out.read_text() == text and again == summary


def test_infra_errors_are_retried_on_resume(corpus, tmp_path):
    problems = load_problems(corpus["problems"])
    generation = next(
        g for g in read_jsonl(corpus["generations"]) if g["question_id"] == "sum1" and g["sample_id"] == "correct"
    )
    out = tmp_path / "verdicts.jsonl"
    out.write_text(
        json.dumps(
            {"question_id": "sum1", "sample_id": "correct", "passed": False, "verdict": "infra_error", "tests": []}
        )
        + "\n"
    )
    summary = grade_batch(problems, [generation], out, sandbox="process", workers=1, progress=False)
    assert read_verdicts(out)[("sum1", "correct")]["verdict"] == "pass"
    assert summary == {"problems": 1, "infra_errors": 0, "pass@1": 1.0}


def test_unknown_question_and_bad_sandbox_are_one_line_errors(valley, corpus, tmp_path):
    generations = tmp_path / "g.jsonl"
    generations.write_text(json.dumps({"question_id": "nope", "sample_id": 0, "response": "x"}) + "\n")
    result = valley(
        [
            "grade",
            "--problems",
            corpus["problems"],
            "--generations",
            generations,
            "--out",
            tmp_path / "v.jsonl",
            "--sandbox",
            "process",
        ],
        check=False,
    )
    assert result.returncode == 1 and "nope/0: no problem with that question_id" in result.stderr
    assert "Traceback" not in result.stderr
    result = valley(
        [
            "grade",
            "--problems",
            corpus["problems"],
            "--generations",
            generations,
            "--out",
            tmp_path / "v.jsonl",
            "--sandbox",
            "docker",
        ],
        check=False,
    )
    assert result.returncode == 3 and "--sandbox" in result.stderr and "process" in result.stderr  # bad usage


def test_a_sandbox_that_cannot_start_is_an_infra_error_never_a_verdict(corpus, tmp_path, monkeypatch):
    POOL.close_all()  # no warm sandbox: the next grade must start one
    monkeypatch.setenv("VALLEY_GRADER_TMPDIR", str(tmp_path / "does-not-exist"))
    problems = load_problems(corpus["problems"])
    generation = next(g for g in read_jsonl(corpus["generations"]) if g["sample_id"] == "correct")
    out = tmp_path / "verdicts.jsonl"
    summary = grade_batch(problems, [generation], out, sandbox="process", workers=1, progress=False)
    row = read_verdicts(out)[(generation["question_id"], "correct")]
    assert row["verdict"] == "infra_error" and row["passed"] is False and "does-not-exist" in row["detail"]
    assert summary == {"problems": 0, "infra_errors": 1}
