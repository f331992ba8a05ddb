"""Spec validation and the study grid, through the real CLI where a user would meet them."""

import json

import pytest

from manager.study import valley_study
from valley.spec import DataSpec, RunSpec, TrainSpec, parse_size
from valley.train.steps import step_plan


@pytest.mark.parametrize(
    "text,count", [("1k", 1000), ("10k", 10000), ("30K", 30000), ("6k", 6000), ("4k", 4000), (300, 300), ("2.5k", 2500)]
)
def test_sizes_parse(text, count):
    assert parse_size(text) == count


@pytest.mark.parametrize("bad", ["abc", "0", "-1k", "1.0005k", True])
def test_bad_sizes_name_the_field(bad):
    with pytest.raises(ValueError, match="size"):
        DataSpec(size=bad)


def test_grid_has_fourteen_training_runs_and_two_baselines():
    runs = valley_study()
    trained = [r for r in runs if not r.is_baseline]
    assert len(trained) == 14 and len(runs) == 16
    assert sum(r.model.preset == "qwen" for r in trained) == 11
    assert sum(r.model.preset == "llama" for r in trained) == 3
    continued = [r for r in trained if r.base is not None]
    assert len(continued) == 4 and all(r.base.label == "qwen-30k" for r in continued)
    assert len({r.name for r in runs}) == 16


# Hand-computed: ceil(N / 8 GPUs) micro-batches per rank, // 16 accumulation steps, x 5 epochs,
# warmup = 10% of total rounded half up.
@pytest.mark.parametrize(
    "size,per_epoch,total,warmup",
    [
        ("1k", 7, 35, 4),  # ceil(1000/8)=125 -> 125//16=7
        ("10k", 78, 390, 39),  # 1250//16=78
        ("30k", 234, 1170, 117),  # 3750//16=234
        ("6k", 46, 230, 23),  # 750//16=46
        ("4k", 31, 155, 16),  # 500//16=31, 15.5 -> 16
    ],
)
def test_step_math(size, per_epoch, total, warmup):
    plan = step_plan(parse_size(size), TrainSpec())
    assert (plan.steps_per_epoch, plan.total_steps, plan.warmup_steps) == (per_epoch, total, warmup)


def test_same_spec_same_name_changed_spec_new_name():
    a = RunSpec(model="qwen", data=DataSpec(size="10k"), train=TrainSpec())
    b = RunSpec(model="qwen", data=DataSpec(size="10k"), train=TrainSpec())
    c = RunSpec(model="qwen", data=DataSpec(size="10k"), train=TrainSpec(lr=1e-5))
    assert a.name == b.name != c.name
    assert RunSpec.from_json(a.to_json()) == a


def test_impossible_batch_split_is_one_line_naming_the_field(valleyctl):
    with pytest.raises(ValueError, match="global_batch_size: 128 is not a multiple"):
        TrainSpec(gpus_per_node=6)


def test_plan_json_through_cli(valleyctl):
    out = json.loads(valleyctl(["plan", "--json"]).stdout)
    rows = {r["label"]: r for r in out["runs"]}
    assert rows["qwen-10k"]["total_steps"] == 390 and rows["qwen-10k"]["warmup_steps"] == 39
    assert rows["qwen-30k+correct-6k"]["depends_on"] == rows["qwen-30k"]["name"]
    assert "qwen-30k+correct-6k" in rows["qwen-correct-6k"]["shares_data_with"]
    assert rows["qwen-1k"]["nested_in"] == ["10k", "30k"]
    assert any("tokens/s/GPU" in line for line in out["assumptions"])


def test_unknown_study_is_one_line(valleyctl):
    result = valleyctl(["plan", "--study", "nope"], check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: study: unknown study 'nope'; allowed: valley, mini"


def test_subset_dir_names_tell_apart_students_and_token_budgets() -> None:
    from valley.spec import DataSpec, RunSpec, TrainSpec

    data = DataSpec(size="1k")
    qwen = RunSpec(model="qwen", data=data, train=TrainSpec())
    llama = RunSpec(model="llama", data=data, train=TrainSpec())
    short = RunSpec(model="qwen", data=data, train=TrainSpec(max_seq_len=16384))
    assert qwen.subset_dir_name == "ocr2-random-1k-s42-drop-qwen-t32768"
    assert len({qwen.subset_dir_name, llama.subset_dir_name, short.subset_dir_name}) == 3
    assert RunSpec(model="qwen").subset_dir_name is None


def test_a_literal_error_names_the_allowed_values_in_their_own_case():
    from pydantic import ValidationError

    from manager.profile import Toleration
    from valley.errors import one_line

    with pytest.raises(ValidationError) as error:
        Toleration(key="nvidia.com/gpu", operator="exists")
    assert one_line(error.value) == "operator: got 'exists'; input should be 'Exists' or 'Equal'"
