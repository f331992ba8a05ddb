"""MLproject: MLflow's own loader reads it, and each entry point expands to the workload CLI
command of the contract (the same command the local executor and the Jobs run)."""

from __future__ import annotations

import shlex

from manager.images import PROJECT_ROOT


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
        "compare": ({"study": "mini"}, ["valleyctl", "compare", "--study", "mini"]),
    }
    assert set(project._entry_points) == set(expected)
    for name, (params, argv) in expected.items():
        command = project.get_entry_point(name).compute_command({k: str(v) for k, v in params.items()}, str(tmp_path))
        assert shlex.split(command) == argv, name  # paths with spaces stay one argument


def test_python_env_pins_torch_before_the_project():
    import yaml

    env = yaml.safe_load((PROJECT_ROOT / "python_env.yaml").read_text())
    assert env["python"] == "3.11"
    assert env["dependencies"][0] == "torch==2.13.0" and env["dependencies"][1] == ".[train,eval]"
