"""MLproject: MLflow's own loader reads it, and each entry point expands to the workload CLI
command of the contract (the same command the local executor and the Jobs run)."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from manager.images import PROJECT_ROOT
from manager.study import mini_study
from tests.manager.stores import new_store, record_synthetic

FALLBACK = "PATH=$PATH:$PWD/.venv/bin"


def test_entry_points_expand_to_the_workload_commands(tmp_path):
    from mlflow.projects._project_spec import load_project

    project = load_project(str(PROJECT_ROOT))
    assert project.name == "valley" and project.env_type == "python_env"
    spec, tokenizer, data, model = (tmp_path / name for name in ("run spec.json", "tok", "data", "model"))
    spec.write_text("{}")
    for directory in (tokenizer, data, model):
        directory.mkdir()
    expected = {
        "data": (
            {"run_spec": spec, "tokenizer": tokenizer, "out": "/d"},
            ["valley", "data", "build", "--run-spec", str(spec), "--tokenizer", str(tokenizer), "--out", "/d"],
        ),
        "train": (
            {"run_spec": spec, "data": data, "model": model, "out": "/c"},
            ["valley", "train", "--run-spec", str(spec), "--data", str(data), "--model", str(model), "--out", "/c"],
        ),
        "eval": (
            {"run_spec": spec, "model": model, "out": "/e"},
            ["valley", "eval", "--run-spec", str(spec), "--model", str(model), "--out", "/e"],
        ),
        "compare": ({"study": "mini"}, ["valleyctl", "compare", "--study", "mini", "--out", ".valley/compare"]),
    }
    assert set(project._entry_points) == set(expected)
    for name, (params, argv) in expected.items():
        command = project.get_entry_point(name).compute_command({k: str(v) for k, v in params.items()}, str(tmp_path))
        # the project's .venv is the fallback on PATH, so `mlflow run` works from a fresh shell
        assert shlex.split(command) == [FALLBACK, *argv], name  # paths with spaces stay one argument


def test_python_env_pins_torch_before_the_project():
    import yaml

    env = yaml.safe_load((PROJECT_ROOT / "python_env.yaml").read_text())
    assert env["python"] == "3.11"
    assert env["dependencies"][0] == "torch==2.13.0" and env["dependencies"][1] == ".[train,eval]"


@pytest.mark.slow
def test_mlflow_run_works_from_a_fresh_shell_and_compare_logs_into_the_run_it_created(tmp_path):
    """Issue 22: `mlflow run . -e compare` failed with `valleyctl: command not found` from a fresh
    shell, and with the venv on PATH the run it created stayed empty (compare logged elsewhere)."""
    uri, tracker = new_store(tmp_path)
    for run in mini_study()[:4]:
        record_synthetic(tracker, run, tmp_path / "eval")
    mlflow = str(PROJECT_ROOT / ".venv" / "bin" / "mlflow")
    fresh_shell = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": os.environ.get("LANG", "C.UTF-8")}
    result = subprocess.run(
        [mlflow, "run", str(PROJECT_ROOT), "-e", "compare", "--env-manager", "local", "--experiment-name", "project"]
        + ["-P", "study=mini", "-P", f"out={tmp_path / 'cmp'}"],
        env={**fresh_shell, "MLFLOW_TRACKING_URI": uri},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    (created,) = client.search_runs([client.get_experiment_by_name("project").experiment_id])
    assert created.info.status == "FINISHED"
    logged = {a.path for a in client.list_artifacts(created.info.run_id, "compare")}
    assert logged == {"compare/valley-mini.png", "compare/compare-mini.json"}
