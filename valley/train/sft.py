"""`valley train`: one run's torchtune SFT, from RunSpec to a registered HF checkpoint.

Reads top to bottom: validate the launch, render and write the config, run `tune run` (it
resumes from the last completed epoch when an earlier attempt was interrupted), export the
final epoch to OUT/final, register it in the attached MLflow run by reference.

Layout of OUT (the run's directory on the checkpoint volume):
    config.yaml            the rendered torchtune config of the latest attempt
    torchtune/epoch_N/     torchtune's per-epoch HF checkpoints; recipe_state/ for resume
    final/                 the last epoch, HF format with tokenizer, loadable by transformers and vLLM;
                           final/.valley-checkpoint.json lists every file with size and sha256
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

from valley.chat import template_hash
from valley.cli_kit import load_run_spec
from valley.data.lineage import log_subset_input
from valley.files import file_sha256, write_atomic
from valley.spec import RunSpec
from valley.tracking import stage_run
from valley.train.config import (
    TrainConfigError,
    TrainPaths,
    check_launch,
    config_yaml,
    launch_command,
    plan_steps,
    recipe_name,
    render_config,
)
from valley.train.steps import StepPlan
from valley.vocabulary import TRAIN_KIND

MANIFEST = ".valley-checkpoint.json"
#: files a student needs besides weights; copied from the model dir if torchtune did not carry them
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "generation_config.json",
    "chat_template.jinja",
)
#: how the run tags the checkpoint it registered (set once, so reruns do not register twice)
MODEL_ID_TAG = "valley.checkpoint.model_id"


def train(
    run_spec: Path, *, data_dir: Path, model_dir: Path, out_dir: Path, base_checkpoint: Path | None = None
) -> Path:
    """Train the run described by run_spec; return OUT/final. Raises TrainConfigError for bad input."""
    run = load_run(run_spec)
    paths = TrainPaths.resolved(data_dir, model_dir, out_dir, base_checkpoint)
    # `<label>/train`, a child of the run launch made: its duration and system metrics are this work's
    with stage_run(TRAIN_KIND) if lead_node() else nullcontext() as active:
        if (paths.final_dir / MANIFEST).exists():  # finished earlier: only make sure it is registered
            register_checkpoint(run, paths, active)
            return paths.final_dir
        device, processes = launch_shape(run)
        check_launch(run, processes=processes)
        plan = plan_steps(run, count_examples(paths))
        done = completed_epochs(paths.torchtune_dir, run.train.epochs)
        if done < run.train.epochs:
            fine_tune(run, paths, plan=plan, device=device, resume_epochs=done)
        if lead_node():  # every node trains; one exports and registers
            export_final(paths, run.train.epochs)
            register_checkpoint(run, paths, active)
    return paths.final_dir


def fine_tune(run: RunSpec, paths: TrainPaths, *, plan: StepPlan, device: str, resume_epochs: int) -> None:
    config = render_config(run, paths, plan=plan, device=device, resume_epochs=resume_epochs)
    if lead_node():
        log_plan(plan, config)
        # runs sharing a subset (qwen-correct-6k, qwen-30k+correct-6k) each record it, not only the builder
        if (paths.data_dir / "manifest.json").is_file():
            log_subset_input(paths.data_dir / "manifest.json")
    config_path = paths.out_dir / "config.yaml"
    write_atomic(config_path, config_yaml(run, config, config_path, device=device))
    if resume_epochs:
        print(f"resuming {run.label} after epoch {resume_epochs} of {run.train.epochs}", file=sys.stderr)
    run_tune(run, config_path, device)


def lead_node() -> bool:
    """Node 0 of a multi-node run (torchrun's PET_NODE_RANK, or the Indexed Job's completion index)."""
    return int(os.environ.get("PET_NODE_RANK", os.environ.get("JOB_COMPLETION_INDEX", "0"))) == 0


def load_run(path: Path) -> RunSpec:
    run = load_run_spec(path)
    if run.train is None:
        raise TrainConfigError(f"--run-spec: {run.label} is an untrained baseline; there is nothing to train")
    return run


def launch_shape(run: RunSpec) -> tuple[str, int]:
    """(device, total processes): one per visible GPU on each node, else one CPU process."""
    import torch

    per_node = torch.cuda.device_count()
    return ("cuda", run.train.nodes * per_node) if per_node else ("cpu", run.train.nodes)


def count_examples(paths: TrainPaths) -> int:
    train_file = paths.data_dir / "train.jsonl"
    if not train_file.is_file():
        raise TrainConfigError(f"--data: {train_file} is missing; build the subset with `valley data build`")
    if not (paths.model_dir / "config.json").is_file():
        raise TrainConfigError(f"--model: {paths.model_dir} is not a model dir; fetch it with `valley model fetch`")
    if paths.base_checkpoint and not (paths.base_checkpoint / MANIFEST).is_file():
        raise TrainConfigError(f"--base-checkpoint: {paths.base_checkpoint} is not a finished valley checkpoint")
    with train_file.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def completed_epochs(torchtune_dir: Path, epochs: int) -> int:
    """Epochs an earlier attempt finished: all when the last epoch's checkpoint is complete,
    else what recipe_state.pt records (written after each epoch but the last)."""
    if epoch_complete(torchtune_dir / f"epoch_{epochs - 1}"):
        return epochs
    state = torchtune_dir / "recipe_state" / "recipe_state.pt"
    if not state.exists():
        return 0
    import torch

    try:
        # mmap: the state holds the optimizer (tens of GB for a 7B model); only one int is read
        done = int(torch.load(state, mmap=True, weights_only=False)["epochs_run"])
    except Exception as error:  # torchtune writes it in place: a kill mid-write leaves it unreadable
        print(f"warning: {state} is unreadable ({error}); training starts over", file=sys.stderr)
        return 0
    return done if epoch_complete(torchtune_dir / f"epoch_{done - 1}") else 0


def epoch_complete(epoch_dir: Path) -> bool:
    # torchtune writes the index after all shards, then copies config.json and the tokenizer
    index = epoch_dir / "model.safetensors.index.json"
    if not index.exists() or not (epoch_dir / "config.json").exists():
        return False
    shards = set(json.loads(index.read_text())["weight_map"].values())
    return all((epoch_dir / shard).exists() for shard in shards)


def run_tune(run: RunSpec, config_path: Path, device: str) -> None:
    command = launch_command(run, config_path, device=device)
    # the same interpreter as this process, so `tune` and its recipes come from this environment
    command = [sys.executable, "-m", "torchtune._cli.tune", *command[1:]]
    print(f"{recipe_name(run, device)}: {' '.join(command)}", file=sys.stderr, flush=True)
    env = os.environ.copy()
    # chat_dataset caches its Arrow copy under HF_HOME by default, which is read-only in hardened pods
    env.setdefault("HF_DATASETS_CACHE", str(config_path.parent / ".cache" / "datasets"))
    result = subprocess.run(command, cwd=config_path.parent, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"tune run exited {result.returncode}; rerun `valley train` to resume from the last epoch")


def export_final(paths: TrainPaths, epochs: int) -> None:
    """Copy the last epoch to OUT/final with tokenizer files and a manifest; rename into place."""
    last = paths.torchtune_dir / f"epoch_{epochs - 1}"
    partial = paths.out_dir / "final.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(last, partial)
    for name in TOKENIZER_FILES:
        if (paths.model_dir / name).exists() and not (partial / name).exists():
            shutil.copy2(paths.model_dir / name, partial / name)
    files = sorted(p for p in partial.iterdir() if p.is_file())
    with ThreadPoolExecutor(max_workers=8) as pool:  # hashlib releases the GIL on large reads
        digests = list(pool.map(file_sha256, files))
    manifest = {
        "path": str(paths.final_dir),
        "source_epoch": epochs - 1,
        "files": [{"name": p.name, "size": p.stat().st_size, "sha256": d} for p, d in zip(files, digests, strict=True)],
        "total_size": sum(p.stat().st_size for p in files),
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(paths.final_dir, ignore_errors=True)
    partial.rename(paths.final_dir)


def log_plan(plan: StepPlan, config: dict) -> None:
    """The step plan as run params, before training, so progress can be read against it."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return
    import mlflow

    mlflow.MlflowClient().log_batch(
        run_id,
        params=[
            mlflow.entities.Param(f"train_plan.{key}", str(value))
            for key, value in {
                "examples": plan.examples,
                "steps_per_epoch": plan.steps_per_epoch,
                "total_steps": plan.total_steps,
                "warmup_steps": plan.warmup_steps,
                "gradient_accumulation_steps": config["gradient_accumulation_steps"],
                "recipe_device": config["device"],
                "chat_template_hash": template_hash(chat_template(Path(config["tokenizer"]["path"]))),
            }.items()
        ],
    )


def chat_template(model_dir: Path) -> str:
    """The template transformers (and so vLLM) will load: chat_template.jinja, else tokenizer_config.json's."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text()
    return json.loads((model_dir / "tokenizer_config.json").read_text()).get("chat_template") or ""


def register_checkpoint(run: RunSpec, paths: TrainPaths, active) -> None:
    """Record the final checkpoint in the train run: a manifest artifact, the rendered config, and
    an MLflow 3 external LoggedModel pointing at the files (nothing uploaded) that carries the run
    spec, so the model says what it was trained on. Registered once: reruns find its tag."""
    if active is None:
        return
    import mlflow
    from mlflow.entities import LoggedModelOutput

    manifest = json.loads((paths.final_dir / MANIFEST).read_text())
    mlflow.log_dict(manifest, "checkpoint/manifest.json")
    config_path = paths.out_dir / "config.yaml"
    if config_path.exists():
        mlflow.log_artifact(str(config_path), artifact_path="train")
    if MODEL_ID_TAG in mlflow.get_run(active.info.run_id).data.tags:
        return
    digest = hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()
    model = mlflow.create_external_model(
        name=run.label,
        source_run_id=active.info.run_id,
        tags={
            # where the files are on the checkpoint volume (the same path in every pod), not on a machine
            "valley.checkpoint.volume_path": run.checkpoint_dir,
            "valley.checkpoint.manifest_sha256": digest,
            "valley.run_name": run.name,
        },
        params={
            "total_size": str(manifest["total_size"]),
            "files": str(len(manifest["files"])),
            "model_preset": run.model.preset,
            "spec_hash": run.spec_hash,
        },
        model_type="checkpoint",
    )
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "run.json"
        spec.write_text(run.to_json())
        mlflow.MlflowClient().log_model_artifact(model.model_id, str(spec))
    # the run's outputs: the UI's Models column and the model's page link the two
    mlflow.log_outputs([LoggedModelOutput(model.model_id, step=0)])
    mlflow.set_tags({MODEL_ID_TAG: model.model_id, "valley.checkpoint.volume_path": run.checkpoint_dir})
