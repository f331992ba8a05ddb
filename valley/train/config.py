"""The complete torchtune config of one run, rendered from its RunSpec (pure: spec + paths in, dict out).

Not a built-in config name with overrides: every key the full_finetune recipes read is
written out, so the config file logged with the run is the whole recipe. The paper's
recipe (TrainSpec defaults): global batch 128 = nodes x GPUs x micro-batch x gradient
accumulation, AdamW lr 8e-5, cosine schedule with 10% linear warmup counted in real
optimizer steps, 5 epochs, sequence 32,768, bf16, activation checkpointing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from valley.errors import ConfigError
from valley.spec import RunSpec
from valley.train.steps import StepPlan, step_plan
from valley.train.tiny import TINY_ARCH


class TrainConfigError(ConfigError):
    """A run that cannot be trained as specified; retrying will not help (exit code 3)."""


#: torchtune builder of each real student (sizes spelled out in torchtune's presets)
REAL_BUILDERS = {
    "qwen2_5": "torchtune.models.qwen2_5.qwen2_5_7b_instruct",
    "llama3_1": "torchtune.models.llama3_1.llama3_1_8b",
}
MODEL_TYPES = {"qwen2_5": "QWEN2", "llama3_1": "LLAMA3"}
#: Qwen/Qwen2.5-7B-Instruct and meta-llama/Llama-3.1-8B-Instruct both ship 4 safetensors shards
REAL_SHARDS = 4
#: torchtune's own output dir inside the run's checkpoint dir (epoch_N/, recipe_state/, logs)
TORCHTUNE_SUBDIR = "torchtune"


@dataclass(frozen=True)
class TrainPaths:
    """Where one training run reads and writes; all absolute."""

    data_dir: Path
    model_dir: Path
    out_dir: Path
    base_checkpoint: Path | None = None

    @classmethod
    def resolved(
        cls, data_dir: Path, model_dir: Path, out_dir: Path, base_checkpoint: Path | None = None
    ) -> "TrainPaths":
        # relative paths would be re-resolved against torchtune's working dir; make them absolute once, here
        return cls(
            data_dir.resolve(),
            model_dir.resolve(),
            out_dir.resolve(),
            base_checkpoint.resolve() if base_checkpoint else None,
        )

    @property
    def torchtune_dir(self) -> Path:
        return self.out_dir / TORCHTUNE_SUBDIR

    @property
    def final_dir(self) -> Path:
        return self.out_dir / "final"


def shard_files(run: RunSpec, *, from_base: bool) -> list[str]:
    """Safetensors files of the starting checkpoint.

    A fetched tiny model is one `model.safetensors`; a real one the Hub's 4 shards; a base
    run's final checkpoint carries torchtune's own names for the same shard count.
    """
    count = 1 if run.model.tiny else REAL_SHARDS
    if run.model.tiny and not from_base:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def model_component(run: RunSpec) -> dict:
    """The student's torchtune builder: the real preset, or the component builder at toy width."""
    if not run.model.tiny:
        return {"_component_": REAL_BUILDERS[run.model.family]}
    arch = TINY_ARCH[run.model.family]
    dims = {
        "vocab_size": arch.vocab_size,
        "num_layers": arch.num_layers,
        "num_heads": arch.num_heads,
        "num_kv_heads": arch.num_kv_heads,
        "embed_dim": arch.embed_dim,
        "intermediate_dim": arch.intermediate_dim,
        "max_seq_len": arch.max_seq_len,
        "norm_eps": arch.norm_eps,
    }
    if run.model.family == "qwen2_5":
        return {
            "_component_": "torchtune.models.qwen2.qwen2",
            **dims,
            "rope_base": arch.rope_base,
            "tie_word_embeddings": arch.tie_word_embeddings,
        }
    return {"_component_": "torchtune.models.llama3_1.llama3_1", **dims, "rope_base": int(arch.rope_base)}


def check_launch(run: RunSpec, *, processes: int) -> None:
    """The launch must supply exactly the data-parallel ranks the spec's global batch assumes."""
    train = run.train
    if processes != train.data_parallel_size:
        raise TrainConfigError(
            f"train.gpus_per_node: the spec splits global batch {train.global_batch_size} over "
            f"{train.nodes} node(s) x {train.gpus_per_node} GPU(s) = {train.data_parallel_size} ranks, "
            f"but this launch has {processes} (visible GPUs x nodes, or one CPU process); set nodes/gpus_per_node "
            f"to the hardware (gradient accumulation is derived from them)"
        )


def plan_steps(run: RunSpec, examples: int) -> StepPlan:
    """The run's step plan for `examples` SFT rows, computed once per training process.

    Raises:
        TrainConfigError: the spec cannot be trained (baseline, or too few examples for one step).
    """
    if run.train is None:
        raise TrainConfigError(f"train: {run.label} is an untrained baseline; there is nothing to train")
    try:
        return step_plan(examples, run.train)
    except ValueError as error:
        raise TrainConfigError(str(error)) from None


def render_config(
    run: RunSpec, paths: TrainPaths, *, plan: StepPlan, device: str = "cuda", resume_epochs: int = 0
) -> dict:
    """The full torchtune config for `run`.

    Args:
        run: a trained RunSpec.
        paths: absolute data/model/output paths (TrainPaths.resolved).
        plan: the step plan of the built subset (plan_steps); drives the warmup step count.
        device: "cuda" in the pod; "cpu" for tiny models on a laptop.
        resume_epochs: epochs already completed in paths.torchtune_dir (0 = fresh start);
            a resumed run loads epoch_{resume_epochs - 1} and recipe_state.pt.

    Raises:
        TrainConfigError: a continued run without its base checkpoint.
    """
    train = run.train
    if run.base is not None and paths.base_checkpoint is None:
        raise TrainConfigError(
            f"--base-checkpoint: {run.label} continues from {run.base.label}; pass its final checkpoint dir"
        )

    from_base = run.base is not None
    files = shard_files(run, from_base=from_base)
    start_dir = paths.base_checkpoint if from_base else paths.model_dir
    if resume_epochs:
        # torchtune resumes weights from output_dir and names its shards model-0000i-of-0000n
        count = len(files)
        files = [f"epoch_{resume_epochs - 1}/model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]
    cuda = device == "cuda"
    config = {
        "output_dir": str(paths.torchtune_dir),
        "model": model_component(run),
        # the student's own HF chat template, so training text == evaluation prompts (see hf_tokenizer)
        "tokenizer": {
            "_component_": "valley.train.hf_tokenizer.hf_chat_tokenizer",
            "path": str(paths.model_dir),
            "max_seq_len": train.max_seq_len,
        },
        "checkpointer": {
            "_component_": "torchtune.training.FullModelHFCheckpointer",
            "checkpoint_dir": str(start_dir),
            "checkpoint_files": files,
            "recipe_checkpoint": None,
            "output_dir": str(paths.torchtune_dir),
            "model_type": MODEL_TYPES[run.model.family],
        },
        "resume_from_checkpoint": bool(resume_epochs),
        "dataset": {
            "_component_": "torchtune.datasets.chat_dataset",
            "source": "json",
            "data_files": str(paths.data_dir / "train.jsonl"),
            "split": "train",
            "conversation_column": "messages",
            "conversation_style": "openai",
            "train_on_input": False,
            "packed": train.packed,
        },
        "seed": train.seed,
        "shuffle": True,
        "batch_size": train.micro_batch_size,
        "epochs": train.epochs,
        "max_steps_per_epoch": None,
        "gradient_accumulation_steps": train.gradient_accumulation_steps,
        "optimizer": {
            "_component_": "torch.optim.AdamW",
            "lr": train.lr,
            "weight_decay": train.weight_decay,
            "fused": cuda,
        },
        # torchtune has no warmup ratio: the recipe passes num_training_steps = epochs x steps/epoch itself
        "lr_scheduler": {
            "_component_": "torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup",
            "num_warmup_steps": plan.warmup_steps,
        },
        "loss": {"_component_": "torchtune.modules.loss.CEWithChunkedOutputLoss"},
        "clip_grad_norm": None,
        "compile": False,
        "optimizer_in_bwd": False,
        "device": device,
        "dtype": train.dtype,
        "enable_activation_checkpointing": train.activation_checkpointing,
        "enable_activation_offloading": False,
        "fsdp_cpu_offload": False,
        "metric_logger": {"_component_": "valley.train.mlflow_logger.AttachedMLFlowLogger"},
        "log_every_n_steps": 1,
        "log_peak_memory_stats": cuda,
        "profiler": {"_component_": "torchtune.training.setup_torch_profiler", "enabled": False},
    }
    if run.model.family == "llama3_1" and not run.model.tiny:
        config["custom_sharded_layers"] = ["tok_embeddings", "output"]  # as torchtune's llama3_1/8B_full
    return config


def recipe_name(run: RunSpec, device: str) -> str:
    one_process = device != "cuda" and run.train is not None and run.train.data_parallel_size == 1
    return "full_finetune_single_device" if one_process else "full_finetune_distributed"


def launch_command(run: RunSpec, config_path: Path, *, device: str = "cuda", tune: str = "tune") -> list[str]:
    """`tune run` for this run: one CPU process locally, nodes x GPUs ranks in the pod.

    Multi-node runs rendezvous with c10d; the endpoint and node rank come from torchrun's
    own environment variables (PET_RDZV_ENDPOINT, PET_NODE_RANK) set on the pods.
    """
    recipe = recipe_name(run, device)
    if recipe == "full_finetune_single_device":
        return [tune, "run", recipe, "--config", str(config_path)]
    train = run.train
    command = [tune, "run", "--nnodes", str(train.nodes), "--nproc_per_node", str(train.gpus_per_node)]
    if train.nodes > 1:
        command += ["--rdzv_backend", "c10d", "--rdzv_id", run.name]
    return command + [recipe, "--config", str(config_path)]


def config_yaml(run: RunSpec, config: dict, config_path: Path, *, device: str = "cuda") -> str:
    """The config as YAML, opening with the exact launch command and one override example."""
    launch = " ".join(launch_command(run, config_path, device=device))
    header = (
        f"# valley torchtune config for {run.label} ({run.name}); rendered from its RunSpec, do not edit.\n"
        f"# Launch:   {launch}\n"
        f"# Override: {launch} epochs=1\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, width=120)
