"""The built subset shows up as the attached MLflow run's training input."""

from __future__ import annotations

import hashlib
import json
import os


def test_build_logs_the_subset_as_the_runs_input(valley, write_spec, tokenizer_dir, tmp_path, mlflow_uri) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.create_experiment("valley-mini")
    run_id = client.create_run(experiment).info.run_id

    out = tmp_path / "subset"
    env = {"MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": mlflow_uri}
    result = valley(
        ["data", "build", "--run-spec", write_spec(40), "--tokenizer", tokenizer_dir, "--out", out], env=env
    )
    assert "logged as the run's training input" in result.stdout

    manifest = json.loads((out / "manifest.json").read_text())
    (dataset_input,) = client.get_run(run_id).inputs.dataset_inputs
    dataset = dataset_input.dataset
    # named by its folder (which holds the student and budget), digested by the whole manifest
    assert dataset.name == out.name and manifest["key"] == "sample-random-40-s42-truncate"
    assert dataset.digest == hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()[:16]
    assert json.loads(dataset.source)["uri"].endswith("subset")
    profile = json.loads(dataset.profile)
    assert profile["num_rows"] == 40 and profile["tokens"] == manifest["token_stats"]["tokens_kept"]
    assert profile["sources"] == [
        "valley-sample (nvidia/OpenCodeReasoning-2 schema)@valley-sample-1",
        "valley-sample (BAAI/TACO schema)@valley-sample-1",
    ]
    tags = {tag.key: tag.value for tag in dataset_input.tags}
    assert tags["mlflow.data.context"] == "training" and tags["valley.data.key"] == manifest["key"]


def test_runs_logging_the_same_subset_at_once_all_get_it(
    valley, write_spec, tokenizer_dir, tmp_path, mlflow_uri
) -> None:
    """The local executor builds two students' identical subsets at once: MLflow inserts the dataset
    row check-then-insert, so the second writer met a UNIQUE constraint and the data step failed."""
    import subprocess
    import sys
    import time

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.create_experiment("valley-mini")
    out = tmp_path / "subset"
    valley(["data", "build", "--run-spec", write_spec(40), "--tokenizer", tokenizer_dir, "--out", out])
    start_at = time.time() + 8  # every writer imports mlflow first, then all log in the same instant
    script = (
        "import sys, time; from pathlib import Path; from valley.data.lineage import log_subset_input; "
        "import mlflow, mlflow.data; time.sleep(max(0, float(sys.argv[1]) - time.time())); "
        "assert log_subset_input(Path(sys.argv[2]))"
    )
    writers = []
    for _ in range(12):
        run_id = client.create_run(experiment).info.run_id
        env = {**os.environ, "MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": mlflow_uri}
        writers.append(
            (
                run_id,
                subprocess.Popen(
                    [sys.executable, "-c", script, str(start_at), str(out / "manifest.json")],
                    env=env,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    for run_id, writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err[-2000:]
        assert len(client.get_run(run_id).inputs.dataset_inputs) == 1
