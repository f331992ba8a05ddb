"""`valley train` through the real CLI on CPU: tiny SFT end to end, resume after a kill, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.valley.train.train_helpers import mini_run, tiny_model, write_subset
from valley.chat import CHAT_TEMPLATES, template_hash
from valley.files import file_sha256
from valley.vocabulary import KIND_TAG, PARENT_RUN_TAG, TRAIN_KIND, tag_filter

#: per-step losses of the seeded tiny-qwen SFT in `trained_tiny_qwen` (regenerate with --update-golden)
PINNED_LOSSES = Path(__file__).parent / "golden" / "tiny_qwen_losses.json"


def precreated_run(uri: str, run) -> str:
    """What the control plane does before launching: one MLflow run per RunSpec, id passed by env."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"valley-{run.study}")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(f"valley-{run.study}")
    return client.create_run(experiment_id, tags={"valley.run_name": run.name, "valley.label": run.label}).info.run_id


def train_run_id(uri: str, run_id: str) -> str:
    """The `<label>/train` run `valley train` opened below the pre-created run."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_run(run_id).info.experiment_id
    (found,) = client.search_runs([experiment], tag_filter({PARENT_RUN_TAG: run_id, KIND_TAG: TRAIN_KIND}))
    return found.info.run_id


def train_args(run_json: str, model_dir: Path) -> list:
    # relative --run-spec/--data/--out on purpose: an earlier attempt doubled relative paths
    return ["train", "--run-spec", run_json, "--data", "data", "--model", model_dir, "--out", "ckpt"]


def baseline_json() -> str:
    from manager.study import mini_study

    return next(r for r in mini_study() if r.is_baseline).to_json()


@pytest.fixture(scope="module")
def trained_tiny_qwen(tmp_path_factory):
    """One tiny SFT through the real CLIs, as the local executor runs it: data build, then train."""
    from tests.conftest import _cli

    run = mini_run("tiny-qwen")
    model_dir = tiny_model(tmp_path_factory, "tiny-qwen")
    work = tmp_path_factory.mktemp("sft")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    (work / "run.json").write_text(run.to_json())
    _cli(
        "valley",
        ["data", "build", "--run-spec", "run.json", "--tokenizer", model_dir, "--out", "data"],
        None,
        work,
        True,
        600,
    )
    run_id = precreated_run(uri, run)
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_RUN_ID": run_id}
    _cli("valley", train_args("run.json", model_dir), env, work, True, 900)
    return {"work": work, "uri": uri, "run_id": run_id, "env": env, "model_dir": model_dir, "spec": run}


@pytest.mark.slow
def test_tiny_sft_losses_match_the_pinned_values(trained_tiny_qwen, update_golden):
    """As torchtune's recipe tests do: the exact per-step losses of a seeded run, so a change to the
    recipe, the chat template, masking or the data build shows up here, not only "loss falls"."""
    import mlflow

    uri = trained_tiny_qwen["uri"]
    history = mlflow.MlflowClient(uri).get_metric_history(train_run_id(uri, trained_tiny_qwen["run_id"]), "train/loss")
    losses = [round(m.value, 6) for m in sorted(history, key=lambda m: m.step)]
    if update_golden:
        PINNED_LOSSES.write_text(json.dumps(losses, indent=1) + "\n")
    assert PINNED_LOSSES.exists(), f"{PINNED_LOSSES} missing: run pytest {__file__} --update-golden"
    assert losses == pytest.approx(json.loads(PINNED_LOSSES.read_text()), rel=1e-4), (
        f"tiny-qwen SFT losses moved; if intended, regenerate with --update-golden: {losses}"
    )


@pytest.mark.slow
def test_tiny_sft_trains_logs_and_exports_a_loadable_checkpoint(valley, trained_tiny_qwen):
    import mlflow
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work, run_id, model_dir = trained_tiny_qwen["work"], trained_tiny_qwen["run_id"], trained_tiny_qwen["model_dir"]
    final = work / "ckpt" / "final"
    config = yaml.safe_load((work / "ckpt" / "config.yaml").read_text())
    assert config["output_dir"] == str(work / "ckpt" / "torchtune")
    assert config["dataset"]["data_files"] == str(work / "data" / "train.jsonl")

    client = mlflow.MlflowClient(trained_tiny_qwen["uri"])
    run_id = train_run_id(trained_tiny_qwen["uri"], run_id)  # training's own run, nested under the pre-created one
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and logged.info.run_name == "tiny-qwen-40/train"
    assert any(name.startswith("system/cpu") for name in logged.data.metrics)  # MLflow system metrics
    # paths as seen from the run's directory: no machine path in a store that moves
    assert logged.data.params["torchtune.output_dir"] == "torchtune"
    assert logged.data.params["torchtune.dataset.data_files"] == "../data/train.jsonl"
    assert not [v for k, v in logged.data.params.items() if v.startswith("/")]
    plan = {k: v for k, v in logged.data.params.items() if k.startswith("train_plan.")}
    assert plan["train_plan.examples"] == "40"
    assert plan["train_plan.chat_template_hash"] == template_hash(CHAT_TEMPLATES["qwen2_5"])  # what eval records
    assert plan["train_plan.total_steps"] == "60" and plan["train_plan.warmup_steps"] == "6"  # 40 rows / 4 x 6 epochs
    assert logged.data.params["torchtune.tokenizer._component_"] == "valley.train.hf_tokenizer.hf_chat_tokenizer"
    losses = [m.value for m in sorted(client.get_metric_history(run_id, "train/loss"), key=lambda m: m.step)]
    assert (
        len(losses) == 60 and losses[-1] < losses[0] - 0.5
    )  # exact values: test_tiny_sft_losses_match_the_pinned_values
    assert len(client.get_metric_history(run_id, "train/lr")) == 60
    assert all(m.value > 0 for m in client.get_metric_history(run_id, "train/tokens_per_second_per_gpu"))
    artifacts = {a.path for d in ("train", "checkpoint") for a in client.list_artifacts(run_id, d)}
    assert {"train/config.yaml", "train/torchtune_config.yaml", "checkpoint/manifest.json"} <= artifacts
    # the subset was built outside this run: training itself records what it trained on
    [trained_on] = logged.inputs.dataset_inputs
    assert trained_on.dataset.name == "data"  # the subset's directory (written by write_subset here)
    assert trained_on.dataset.digest == file_sha256(work / "data" / "manifest.json")[:16]

    manifest = json.loads((final / ".valley-checkpoint.json").read_text())
    assert manifest["path"] == str(final)
    assert {f["name"] for f in manifest["files"]} >= {
        "model-00001-of-00001.safetensors",
        "config.json",
        "tokenizer.json",
    }
    model = client.get_logged_model(logged.data.tags["valley.checkpoint.model_id"])
    assert model.tags["valley.checkpoint.volume_path"] == trained_tiny_qwen["spec"].checkpoint_dir
    assert model.tags["mlflow.model.isExternal"] == "true" and model.source_run_id == run_id
    assert [output.model_id for output in logged.outputs.model_outputs] == [model.model_id]
    carried = mlflow.artifacts.download_artifacts(f"{model.artifact_location}/run.json", dst_path=str(work / "m"))
    assert Path(carried).read_text() == trained_tiny_qwen["spec"].to_json()  # the model says what it was trained on

    trained = AutoModelForCausalLM.from_pretrained(final)
    initial = AutoModelForCausalLM.from_pretrained(model_dir)
    assert AutoTokenizer.from_pretrained(final).chat_template == AutoTokenizer.from_pretrained(model_dir).chat_template
    tokens = torch.arange(3, 30).unsqueeze(0)
    with torch.no_grad():
        assert not torch.allclose(trained(tokens).logits, initial(tokens).logits, atol=1e-3)

    rerun = valley(train_args("run.json", model_dir), env=trained_tiny_qwen["env"], cwd=work)
    assert "final checkpoint" in rerun.stdout
    assert len(client.get_metric_history(run_id, "train/loss")) == 60  # the rerun trained nothing
    assert len(client.search_logged_models(experiment_ids=[logged.info.experiment_id])) == 1


VLLM_GREEDY = """
import json, sys
from pathlib import Path

if __name__ == "__main__":
    from manager.study import MINI_EVAL
    from vllm import SamplingParams
    from valley.engine import load_engine

    llm = load_engine(Path(sys.argv[1]), MINI_EVAL.model_copy(update={"max_model_len": 256}))
    out = llm.generate([{"prompt_token_ids": json.loads(sys.argv[2])}], SamplingParams(temperature=0, max_tokens=8))
    print(json.dumps(list(out[0].outputs[0].token_ids)))
"""


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_serves_the_final_checkpoint_like_transformers(trained_tiny_qwen, tmp_path):
    """The exported checkpoint through the eval engine loader: greedy tokens equal transformers'."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = trained_tiny_qwen["work"] / "ckpt" / "final"
    tokenizer = AutoTokenizer.from_pretrained(final)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Print the sum of two integers."}],
        tokenize=True,
        add_generation_prompt=True,
        return_dict=False,
    )
    with torch.no_grad():
        expected = (
            AutoModelForCausalLM.from_pretrained(final)
            .generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False)[0, len(prompt) :]
            .tolist()
        )
    script = tmp_path / "vllm_greedy.py"
    script.write_text(VLLM_GREEDY)
    result = subprocess.run(
        [sys.executable, str(script), str(final), json.dumps(prompt)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.slow
def test_a_killed_run_resumes_from_the_last_completed_epoch(valley, tmp_path, tmp_path_factory, mlflow_uri):
    import mlflow

    # two epochs of five steps (40 rows, batch 8): a kill after epoch 1 leaves half the run
    run = mini_run("tiny-llama")
    run = run.model_copy(update={"train": run.train.model_copy(update={"epochs": 2, "global_batch_size": 8})})
    model_dir = tiny_model(tmp_path_factory, "tiny-llama")
    (tmp_path / "run.json").write_text(run.to_json())
    write_subset(tmp_path / "data", rows=run.data.size)
    run_id = precreated_run(mlflow_uri, run)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": mlflow_uri, "MLFLOW_RUN_ID": run_id}

    first = subprocess.Popen(
        [sys.executable, "-m", "valley", *map(str, train_args("run.json", model_dir))],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        # torchtune logs this line once recipe_state.pt (epoch 1 of 2) is fully written
        for line in first.stderr:
            if "Recipe checkpoint of size" in line:
                break
        os.killpg(first.pid, signal.SIGKILL)  # a preempted node
    finally:
        first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    assert not (tmp_path / "ckpt" / "final").exists()

    second = valley(train_args("run.json", model_dir), env=env, cwd=tmp_path)

    assert "resuming tiny-llama-40 after epoch 1 of 2" in second.stderr
    assert "1|1|Loss" not in second.stderr and "2|10|Loss" in second.stderr
    assert yaml.safe_load((tmp_path / "ckpt" / "config.yaml").read_text())["resume_from_checkpoint"] is True
    train_run = train_run_id(mlflow_uri, run_id)  # both attempts log into the one train run
    steps = [m.step for m in mlflow.MlflowClient(mlflow_uri).get_metric_history(train_run, "train/loss")]
    assert sorted(set(steps)) == list(range(1, 11))
    assert all(steps.count(step) == 1 for step in range(1, 6))  # epoch 1 was not trained again
    assert (tmp_path / "ckpt" / "final" / ".valley-checkpoint.json").exists()


def test_configuration_errors_exit_3_with_one_line(valley, tmp_path, tmp_path_factory):
    model_dir = tiny_model(tmp_path_factory, "tiny-qwen")
    write_subset(tmp_path / "data", rows=4)
    run = mini_run("tiny-qwen")
    spec = json.loads(run.to_json())
    cases = {
        "baseline.json": (json.loads(baseline_json()), "untrained baseline"),
        "split.json": (
            {**spec, "train": {**spec["train"], "gpus_per_node": 3}},
            "not a multiple of nodes x gpus_per_node",
        ),
        "ranks.json": (
            {**spec, "train": {**spec["train"], "gpus_per_node": 2, "global_batch_size": 8, "micro_batch_size": 4}},
            "this launch has 1",
        ),
        "few.json": ({**spec, "train": {**spec["train"], "global_batch_size": 8}}, "no optimizer step"),  # 4 rows < 8
    }
    for name, (body, message) in cases.items():
        (tmp_path / name).write_text(json.dumps(body))
        result = valley(
            ["train", "--run-spec", name, "--data", "data", "--model", model_dir, "--out", "ckpt"],
            cwd=tmp_path,
            check=False,
        )
        assert result.returncode == 3, (name, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (name, result.stderr)


@pytest.mark.slow
def test_a_continued_run_starts_from_the_base_runs_final_checkpoint(trained_tiny_qwen, tmp_path):
    """RQ2/RQ3 runs continue from Qwen2.5-30K: torchtune must load the base's exported final/."""
    import torch
    from safetensors.torch import load_file
    from torchtune import training

    from valley.train.config import TrainPaths, plan_steps, render_config

    base = mini_run("tiny-qwen")
    run = mini_run("tiny-qwen", size=120).model_copy(update={"base": base})
    final = trained_tiny_qwen["work"] / "ckpt" / "final"
    paths = TrainPaths.resolved(tmp_path / "data", trained_tiny_qwen["model_dir"], tmp_path / "ckpt", final)
    checkpointer = render_config(run, paths, plan=plan_steps(run, 120), device="cpu")["checkpointer"]
    assert checkpointer["checkpoint_dir"] == str(final)

    loaded = training.FullModelHFCheckpointer(
        **{k: v for k, v in checkpointer.items() if k != "_component_"}
    ).load_checkpoint()[training.MODEL_KEY]
    exported = load_file(final / "model-00001-of-00001.safetensors")
    assert torch.equal(loaded["tok_embeddings.weight"], exported["model.embed_tokens.weight"])


def test_fetching_a_real_student_without_the_hub_fails_in_one_line_and_leaves_no_model_dir(valley, tmp_path):
    result = valley(
        ["model", "fetch", "--preset", "qwen", "--out", tmp_path / "qwen"], check=False, env={"HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: model: could not download Qwen/Qwen2.5-7B-Instruct")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "qwen").exists()


def test_completed_epochs_trusts_only_finished_checkpoints_and_readable_state(tmp_path):
    import torch

    from valley.train.sft import completed_epochs

    def epoch(number: int, complete: bool = True) -> None:
        directory = tmp_path / f"epoch_{number}"
        directory.mkdir()
        shard = "model-00001-of-00001.safetensors"
        (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": shard}}))
        (directory / "config.json").write_text("{}")
        if complete:
            (directory / shard).write_bytes(b"")

    state = tmp_path / "recipe_state" / "recipe_state.pt"
    assert completed_epochs(tmp_path, 3) == 0
    epoch(0)
    state.parent.mkdir()
    torch.save({"epochs_run": 1}, state)
    assert completed_epochs(tmp_path, 3) == 1
    epoch(1, complete=False)  # killed while writing epoch 1: the state still says 1
    assert completed_epochs(tmp_path, 3) == 1
    state.write_bytes(b"truncated")  # killed while torchtune rewrote the state in place
    assert completed_epochs(tmp_path, 3) == 0
    epoch(2)
    assert completed_epochs(tmp_path, 3) == 3
