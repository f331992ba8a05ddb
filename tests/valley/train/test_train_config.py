"""Rendered torchtune configs: golden files, `tune validate`, the paper's step math, launch shapes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from manager.study import MINI_TRAIN, mini_study, valley_study
from tests.valley.train.train_helpers import mini_run
from valley.spec import RunSpec, TrainSpec
from valley.train.config import (
    TrainConfigError,
    TrainPaths,
    config_yaml,
    launch_command,
    plan_steps,
    render_config,
    shard_files,
)

GOLDEN = Path(__file__).parent / "golden"
STUDY = {run.label: run for run in valley_study()}
#: the real students' cells whose configs are pinned as golden files
GOLDEN_LABELS = ["qwen-10k", "llama-10k", "qwen-30k+correct-6k"]


def pod_paths(run: RunSpec) -> TrainPaths:
    """Illustrative pod mounts (the Job passes its real ones to `valley train`)."""
    return TrainPaths(
        data_dir=Path(f"/data/{run.data.key}-{run.model.preset}"),
        model_dir=Path(f"/models/{run.model.preset}"),
        out_dir=Path(f"/checkpoints/{run.name}"),
        base_checkpoint=Path(f"/checkpoints/{run.base.checkpoint_dir}") if run.base else None,
    )


def rendered_yaml(label: str) -> str:
    return run_yaml(STUDY[label])


def run_yaml(run: RunSpec, device: str = "cuda") -> str:
    paths = pod_paths(run)
    config = render_config(run, paths, plan=plan_steps(run, run.data.size), device=device)
    return config_yaml(run, config, paths.out_dir / "config.yaml", device=device)


@pytest.mark.parametrize("label", GOLDEN_LABELS)
def test_real_student_configs_match_golden(label, update_golden):
    golden = GOLDEN / f"{label.replace('+', '_')}.yaml"
    text = rendered_yaml(label)
    if update_golden:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"{golden} missing: run pytest {__file__} --update-golden"
    assert text == golden.read_text(), f"{golden.name} differs; if intended, regenerate with --update-golden"


def test_tune_validate_accepts_every_trained_cell_of_both_studies(tmp_path):
    cells = [(run, "cuda") for run in STUDY.values() if run.train is not None]
    assert len(cells) == 14
    cells += [(run, "cpu") for run in mini_study() if run.train is not None]
    paths = []
    for run, device in cells:
        path = tmp_path / f"{run.name}.yaml"
        path.write_text(run_yaml(run, device))
        paths.append(str(path))
    # one interpreter for all of them: torchtune's import dominates the cost
    script = (
        "import sys\nfrom torchtune._cli.tune import main\n"
        "for path in sys.argv[1:]:\n    sys.argv = ['tune', 'validate', path]\n    main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("Config is well-formed!") == len(paths)


def test_real_configs_name_the_students_builders_shards_and_recipe():
    qwen = yaml.safe_load(rendered_yaml("qwen-10k"))
    llama = yaml.safe_load(rendered_yaml("llama-10k"))
    continued = yaml.safe_load(rendered_yaml("qwen-30k+correct-6k"))

    assert qwen["model"] == {"_component_": "torchtune.models.qwen2_5.qwen2_5_7b_instruct"}
    assert llama["model"] == {"_component_": "torchtune.models.llama3_1.llama3_1_8b"}
    assert (qwen["checkpointer"]["model_type"], llama["checkpointer"]["model_type"]) == ("QWEN2", "LLAMA3")
    shards = [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
    assert qwen["checkpointer"]["checkpoint_files"] == llama["checkpointer"]["checkpoint_files"] == shards
    assert qwen["checkpointer"]["checkpoint_dir"] == "/models/qwen"
    assert continued["checkpointer"]["checkpoint_dir"] == f"/checkpoints/{STUDY['qwen-30k'].name}/final"
    for config in (qwen, llama, continued):
        assert config["tokenizer"]["max_seq_len"] == 32768
        assert config["epochs"] == 5 and config["optimizer"]["lr"] == 8e-5
        assert config["batch_size"] * config["gradient_accumulation_steps"] * 8 == 128
        assert config["dtype"] == "bf16" and config["enable_activation_checkpointing"] is True
        assert config["dataset"]["conversation_style"] == "openai" and config["dataset"]["source"] == "json"
        assert config["output_dir"].startswith("/checkpoints/")
    assert rendered_yaml("qwen-10k").splitlines()[1] == (
        "# Launch:   tune run --nnodes 1 --nproc_per_node 8 full_finetune_distributed "
        f"--config /checkpoints/{STUDY['qwen-10k'].name}/config.yaml"
    )


# Hand-computed for 8 ranks x micro-batch 1 x accumulation 16: each rank gets ceil(N/8) rows,
# steps/epoch = that // 16, total = 5 x steps/epoch, warmup = 10% of total rounded half up.
@pytest.mark.parametrize(
    "size, steps_per_epoch, total, warmup",
    [
        (1_000, 7, 35, 4),  # 125 // 16 = 7; 3.5 -> 4
        (10_000, 78, 390, 39),  # 1250 // 16 = 78
        (30_000, 234, 1170, 117),  # 3750 // 16 = 234
        (6_000, 46, 230, 23),  # 750 // 16 = 46
        (4_000, 31, 155, 16),  # 500 // 16 = 31; 15.5 -> 16
    ],
)
def test_warmup_is_ten_percent_of_the_real_step_count(size, steps_per_epoch, total, warmup):
    from valley.train.steps import step_plan

    run = next(r for r in STUDY.values() if r.data and r.data.size == size and r.model.preset == "qwen")
    plan = step_plan(size, run.train)
    assert (plan.steps_per_epoch, plan.total_steps, plan.warmup_steps) == (steps_per_epoch, total, warmup)
    config = render_config(run, pod_paths(run), plan=plan_steps(run, size))
    assert config["lr_scheduler"]["num_warmup_steps"] == warmup
    assert config["gradient_accumulation_steps"] == 16


def test_warmup_follows_the_built_subset_not_the_nominal_size():
    run = STUDY["qwen-10k"]
    # over-length drops can leave fewer rows than asked for: 9,000 rows -> 1125 // 16 = 70 steps/epoch
    assert render_config(run, pod_paths(run), plan=plan_steps(run, 9_000))["lr_scheduler"]["num_warmup_steps"] == 35


def test_impossible_batch_splits_are_rejected_with_the_reason():
    with pytest.raises(ValueError, match="not a multiple of nodes x gpus_per_node x micro_batch_size = 1 x 3 x 1"):
        TrainSpec(gpus_per_node=3)
    run = mini_run("tiny-qwen")
    with pytest.raises(TrainConfigError, match="no optimizer step"):
        plan_steps(run, 3)


def test_launch_commands_for_pod_multinode_and_laptop():
    run = STUDY["qwen-10k"]
    config = Path("/c/config.yaml")
    assert launch_command(run, config) == [
        "tune",
        "run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "8",
        "full_finetune_distributed",
        "--config",
        str(config),
    ]
    two_nodes = run.model_copy(update={"train": TrainSpec(nodes=2)})
    assert launch_command(two_nodes, config)[:10] == [
        "tune",
        "run",
        "--nnodes",
        "2",
        "--nproc_per_node",
        "8",
        "--rdzv_backend",
        "c10d",
        "--rdzv_id",
        two_nodes.name,
    ]
    assert launch_command(mini_run("tiny-llama"), config, device="cpu") == [
        "tune",
        "run",
        "full_finetune_single_device",
        "--config",
        str(config),
    ]


def test_tiny_configs_use_component_builders_at_toy_width_and_resume_from_the_last_epoch():
    run = mini_run("tiny-llama")
    paths = TrainPaths.resolved(Path("data"), Path("model"), Path("out"))
    fresh = render_config(run, paths, plan=plan_steps(run, 40), device="cpu")
    assert fresh["model"]["_component_"] == "torchtune.models.llama3_1.llama3_1"
    assert fresh["model"]["embed_dim"] // fresh["model"]["num_heads"] == 32
    assert fresh["checkpointer"]["checkpoint_files"] == ["model.safetensors"] == shard_files(run, from_base=False)
    assert fresh["optimizer"]["fused"] is False and fresh["device"] == "cpu" and fresh["dtype"] == MINI_TRAIN.dtype
    assert all(
        Path(p).is_absolute() for p in (fresh["output_dir"], fresh["tokenizer"]["path"], fresh["dataset"]["data_files"])
    )

    resumed = render_config(run, paths, plan=plan_steps(run, 40), device="cpu", resume_epochs=1)
    assert resumed["resume_from_checkpoint"] is True
    assert resumed["checkpointer"]["checkpoint_files"] == ["epoch_0/model-00001-of-00001.safetensors"]
