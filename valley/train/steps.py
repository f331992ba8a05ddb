"""Optimizer-step math of torchtune's full_finetune recipes: what the plan prints and the trainer uses."""

from __future__ import annotations

import math
from dataclasses import dataclass

from valley.spec import TrainSpec


@dataclass(frozen=True)
class StepPlan:
    """Optimizer steps as torchtune's full_finetune recipes count them."""

    examples: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int


def step_plan(examples: int, train: TrainSpec) -> StepPlan:
    """Steps for `examples` SFT rows under `train`.

    The recipe shards with a DistributedSampler (each rank gets ceil(N / dp) rows), batches
    with drop_last=True, then counts one step per `gradient_accumulation_steps` micro-batches.
    torchtune has no warmup ratio, so warmup is the ratio of the real total, rounded half up.
    """
    per_rank = math.ceil(examples / train.data_parallel_size)
    micro_batches = per_rank // train.micro_batch_size
    steps_per_epoch = micro_batches // train.gradient_accumulation_steps
    if steps_per_epoch == 0:
        raise ValueError(f"size: {examples} examples make no optimizer step at global batch {train.global_batch_size}")
    total = steps_per_epoch * train.epochs
    return StepPlan(examples, steps_per_epoch, total, math.floor(train.warmup_ratio * total + 0.5))
