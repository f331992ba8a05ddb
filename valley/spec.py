"""Typed, frozen specs for one cell of a study.

A run is fully described by a `RunSpec`; its name derives from a hash of that spec, so
launching the same spec twice finds the same run, and any change yields a new name (Jobs
are immutable, so a new name is what GitOps needs). Specs become dicts only at the edge
(`to_json`, manifests, MLflow params).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------- models


class ModelSpec(Frozen):
    """A student model: where its weights come from and which torchtune family builds it."""

    preset: str
    hf_id: str
    family: Literal["qwen2_5", "llama3_1"]
    #: tiny presets are random-init toy models built locally; never downloaded
    tiny: bool = False
    #: pinned Hub revision of the weights (None = the default branch, recorded at download)
    revision: str | None = None


MODEL_PRESETS: dict[str, ModelSpec] = {
    "qwen": ModelSpec(preset="qwen", hf_id="Qwen/Qwen2.5-7B-Instruct", family="qwen2_5"),
    "llama": ModelSpec(preset="llama", hf_id="meta-llama/Llama-3.1-8B-Instruct", family="llama3_1"),
    "tiny-qwen": ModelSpec(preset="tiny-qwen", hf_id="valley/tiny-qwen2.5", family="qwen2_5", tiny=True),
    "tiny-llama": ModelSpec(preset="tiny-llama", hf_id="valley/tiny-llama3.1", family="llama3_1", tiny=True),
}


def model_preset(name: str) -> ModelSpec:
    try:
        return MODEL_PRESETS[name]
    except KeyError:
        raise ValueError(f"model: unknown preset {name!r}; allowed: {', '.join(MODEL_PRESETS)}") from None


def _model_from_preset(value: object) -> object:
    return model_preset(value) if isinstance(value, str) else value


# ------------------------------------------------------------------------------ data

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kK]?)\s*$")


def parse_size(value: object) -> int:
    """'1k' -> 1000, '10K' -> 10000, '2.5k' -> 2500, 300 -> 300."""
    if isinstance(value, bool):
        raise ValueError("size: expected a count such as 1k, 10k, 30k, 6k, 4k or an integer")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(f"size: {value!r} is not a count; use 1k, 10k, 30k, 6k, 4k or an integer")
        number = float(match.group(1)) * (1000 if match.group(2) else 1)
        if number != int(number):
            raise ValueError(f"size: {value!r} is not a whole number of examples")
        size = int(number)
    if size <= 0:
        raise ValueError(f"size: must be positive, got {size}")
    return size


def format_size(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


SubsetKind = Literal["random", "correct", "incorrect", "easy", "hard"]

#: which research question each subset kind answers
RQ_OF_SUBSET: dict[str, str] = {
    "random": "rq1",
    "correct": "rq2",
    "incorrect": "rq2",
    "easy": "rq3",
    "hard": "rq3",
}


class DataSpec(Frozen):
    """Which SFT examples a run trains on."""

    #: `ocr2`: the real Hugging Face datasets (OCR2 + TACO); `sample`: the corpus valley ships;
    #: `mini`: its synthetic mini tier (easy templated problems tiny students learn; mini study only)
    source: Literal["ocr2", "sample", "mini"] = "ocr2"
    size: Annotated[int, BeforeValidator(parse_size)]
    subset: SubsetKind = "random"
    seed: int = 42
    #: SFT examples longer than the token budget are dropped (the paper's budget) or truncated
    over_length: Literal["drop", "truncate"] = "drop"

    @property
    def key(self) -> str:
        """Content key of the subset: runs with equal keys train on identical files."""
        return f"{self.source}-{self.subset}-{format_size(self.size)}-s{self.seed}-{self.over_length}"


# ----------------------------------------------------------------------------- train


class TrainSpec(Frozen):
    """The paper's torchtune full fine-tune recipe; defaults are the paper's values."""

    global_batch_size: int = Field(128, gt=0)
    lr: float = Field(8e-5, gt=0)
    warmup_ratio: float = Field(0.10, ge=0, lt=1)
    optimizer: Literal["AdamW"] = "AdamW"
    weight_decay: float = Field(0.0, ge=0)
    max_seq_len: int = Field(32768, gt=0)
    epochs: int = Field(5, gt=0)
    nodes: int = Field(1, gt=0)
    gpus_per_node: int = Field(8, gt=0)
    micro_batch_size: int = Field(1, gt=0)
    seed: int = 42
    dtype: Literal["bf16", "fp32"] = "bf16"
    activation_checkpointing: bool = True
    packed: bool = False

    @property
    def data_parallel_size(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.global_batch_size // (self.data_parallel_size * self.micro_batch_size)

    @model_validator(mode="after")
    def _batch_splits_evenly(self) -> "TrainSpec":
        per_step = self.data_parallel_size * self.micro_batch_size
        if self.global_batch_size % per_step:
            raise ValueError(
                f"global_batch_size: {self.global_batch_size} is not a multiple of nodes x gpus_per_node x "
                f"micro_batch_size = {self.nodes} x {self.gpus_per_node} x {self.micro_batch_size} = {per_step}"
            )
        return self


# ------------------------------------------------------------------------------ eval


#: where the grader's gVisor runs during eval (EvalSpec.isolation): its own pods, or the whole eval pod
Isolation = Literal["split", "pod"]


class EvalSpec(Frozen):
    """How a student is evaluated on LiveCodeBench. The paper states none of these, so they
    are recorded with every run and `compare` refuses to mix runs whose values differ."""

    #: `livecodebench`: livecodebench/code_generation_lite; `sample`: the problems valley ships;
    #: `mini`: the sample corpus's synthetic mini tier (mini study only)
    source: Literal["livecodebench", "sample", "mini"] = "livecodebench"
    lcb_release: str = "release_v5"
    #: contest-date window, inclusive (the DeepSeek-R1 window within release_v5)
    date_start: date = date(2024, 8, 1)
    date_end: date = date(2025, 1, 31)
    n_samples: int = Field(4, gt=0)
    temperature: float = Field(0.6, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    #: prompt + response tokens, the paper's 32K budget
    max_model_len: int = Field(32768, gt=0)
    seed: int = 0
    tensor_parallel_size: int = Field(1, gt=0)
    data_parallel_size: int = Field(8, gt=0)
    #: `split`: vLLM on the default runtime, the grader in its own gVisor pods (needs gVisor only
    #: on CPU nodes); `pod`: the whole eval pod under gVisor with nvproxy (GPU passthrough) and
    #: the grader as a native sidecar
    isolation: Isolation = "split"
    grader_timeout_s: float = Field(6.0, gt=0)
    #: `lcb-generic`: LiveCodeBench's prompt; `sft`: the training prompt (`valley data build`'s user
    #: turn), for toy students too small to carry a skill across prompt formats (the mini study)
    prompt_style: Literal["lcb-generic", "sft"] = "lcb-generic"

    @model_validator(mode="after")
    def _window_is_ordered(self) -> "EvalSpec":
        if self.date_start > self.date_end:
            raise ValueError(f"date_start: {self.date_start} is after date_end {self.date_end}")
        return self

    @property
    def gpus(self) -> int:
        return self.tensor_parallel_size * self.data_parallel_size


# ------------------------------------------------------------------------------- run

_DNS = re.compile(r"[^a-z0-9-]+")


class RunSpec(Frozen):
    """One cell of a study: a student, optionally trained on a subset, then evaluated."""

    study: str = "valley"
    model: Annotated[ModelSpec, BeforeValidator(_model_from_preset)]
    #: None for an untrained baseline
    data: DataSpec | None = None
    train: TrainSpec | None = None
    eval: EvalSpec = EvalSpec()
    #: the run whose final checkpoint this one continues from (RQ2/RQ3 from Qwen2.5-30K);
    #: nested whole, so a change to the base renames every run built on it
    base: "RunSpec | None" = None

    @model_validator(mode="after")
    def _consistent(self) -> "RunSpec":
        if (self.data is None) != (self.train is None):
            raise ValueError("data: a trained run needs both data and train; a baseline needs neither")
        if self.base is not None:
            if self.train is None:
                raise ValueError("base: only a trained run can continue from a base run")
            if self.base.is_baseline:
                raise ValueError("base: the base run must be a trained run")
            if self.base.model.preset != self.model.preset:
                raise ValueError(f"base: base run trains {self.base.model.preset}, this run {self.model.preset}")
        return self

    @property
    def is_baseline(self) -> bool:
        return self.train is None

    @property
    def rq(self) -> str:
        return "baseline" if self.data is None else RQ_OF_SUBSET[self.data.subset]

    @property
    def label(self) -> str:
        """Human label, e.g. `qwen-10k`, `qwen-30k+correct-6k`, `llama-baseline`."""
        if self.data is None:
            return f"{self.model.preset}-baseline"
        size = format_size(self.data.size)
        cell = size if self.data.subset == "random" else f"{self.data.subset}-{size}"
        return f"{self.base.label}+{cell}" if self.base else f"{self.model.preset}-{cell}"

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:8]

    @property
    def name(self) -> str:
        """Stable DNS-1123 name, e.g. `valley-qwen-10k-1a2b3c4d`; Job names add `-train`/`-eval`."""
        label = _DNS.sub("-", f"{self.study}-{self.label}".lower()).strip("-")
        return f"{label[:48].rstrip('-')}-{self.spec_hash}"

    @property
    def subset_dir_name(self) -> str | None:
        """Directory name of the SFT files a trained run reads: the subset, the student's tokenizer
        and the token budget that `over_length` (drop|truncate) applies are all part of them."""
        if self.data is None or self.train is None:
            return None
        return f"{self.data.key}-{self.model.preset}-t{self.train.max_seq_len}"

    @property
    def checkpoint_dir(self) -> str:
        """Where this run's final checkpoint lives, relative to the checkpoint volume."""
        return f"{self.name}/final"

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no whitespace; what the hash and the pods read."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        return cls.model_validate_json(text)
