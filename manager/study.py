"""The studies as data: the paper's grid and a GPU-hour estimate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from valley.errors import ValleyError
from valley.spec import DataSpec, EvalSpec, RunSpec, TrainSpec, format_size

# ---------------------------------------------------------------------- GPU estimate


@dataclass(frozen=True)
class CostAssumptions:
    """What the GPU-hour estimate assumes; printed beside every estimate."""

    #: mean tokens of one SFT example (prompt + <think> trace + answer); R1-style traces
    mean_example_tokens: int = 9_000
    #: full fine-tune throughput of a 7-8B model, bf16, activation checkpointing, at the mean example
    #: length: Llama3.1-8B measured 7,218 (Qwen2.5-7B 8,366) on one H200, one rank without FSDP's
    #: collectives (tests/benchmarks/bench_train_gpu.py, docs/training.md), so an upper bound
    train_tokens_per_s_per_gpu: float = 7_200.0
    #: vLLM decode throughput of one 7-8B replica on one H100 with many concurrent sequences
    eval_tokens_per_s_per_gpu: float = 2_500.0
    #: mean response tokens at evaluation (reasoning students use much of the 32K budget)
    mean_response_tokens: int = 12_000
    #: LiveCodeBench problems in the evaluated window
    eval_problems: int = 279

    def lines(self) -> list[str]:
        return [
            f"mean SFT example length {self.mean_example_tokens:,} tokens",
            f"training {self.train_tokens_per_s_per_gpu:,.0f} tokens/s/GPU (7-8B full FT, bf16, activation "
            "checkpointing; "
            "measured on one H200 without FSDP's collectives: an upper bound)",
            f"evaluation {self.eval_tokens_per_s_per_gpu:,.0f} generated tokens/s/GPU, "
            f"{self.mean_response_tokens:,} tokens per response, {self.eval_problems} problems",
            "evaluation throughput not measured on a GPU here: replace it with a measured figure before budgeting",
        ]


def gpu_hours(run: RunSpec, assumptions: CostAssumptions = CostAssumptions()) -> tuple[float, float]:
    """(training, evaluation) GPU-hours of one run."""
    train_hours = 0.0
    if run.train is not None and run.data is not None:
        tokens = run.data.size * run.train.epochs * assumptions.mean_example_tokens
        train_hours = tokens / assumptions.train_tokens_per_s_per_gpu / 3600
    eval_tokens = assumptions.eval_problems * run.eval.n_samples * assumptions.mean_response_tokens
    return train_hours, eval_tokens / assumptions.eval_tokens_per_s_per_gpu / 3600


# ---------------------------------------------------------------------------- studies


def valley_study(eval_spec: EvalSpec = EvalSpec(), train: TrainSpec = TrainSpec()) -> list[RunSpec]:
    """The paper's grid: 14 training runs plus the two untrained baselines.

    Qwen: RQ1 1k/10k/30k; RQ2 correct/incorrect 6k and RQ3 easy/hard 4k, each from the
    instruct model and again continued from the Qwen 30k run. Llama: RQ1 only.
    """

    def cell(model: str, size: str, subset: str = "random", base: RunSpec | None = None) -> RunSpec:
        data = DataSpec(size=size, subset=subset)
        return RunSpec(model=model, data=data, train=train, eval=eval_spec, base=base)

    runs = [RunSpec(model="qwen", eval=eval_spec), RunSpec(model="llama", eval=eval_spec)]
    for model in ("qwen", "llama"):
        runs += [cell(model, size) for size in ("1k", "10k", "30k")]
    qwen_30k = next(r for r in runs if r.label == "qwen-30k")
    controlled = [("correct", "6k"), ("incorrect", "6k"), ("easy", "4k"), ("hard", "4k")]
    for base in (None, qwen_30k):
        runs += [cell("qwen", size, subset, base) for subset, size in controlled]
    return runs


MINI_TRAIN = TrainSpec(
    global_batch_size=4,
    lr=4e-3,
    warmup_ratio=0.1,
    max_seq_len=1024,
    epochs=6,
    gpus_per_node=1,
    micro_batch_size=4,
    dtype="fp32",
    activation_checkpointing=False,
)
#: the mini tier's held-out problems, prompted as in training, one greedy sample each (a
#: two-layer student neither transfers across prompt formats nor survives its sampling tail)
MINI_EVAL = EvalSpec(
    source="mini",
    lcb_release="mini",
    date_start=date(2024, 8, 1),
    date_end=date(2025, 1, 31),
    n_samples=1,
    temperature=0.0,
    max_model_len=1024,
    data_parallel_size=1,
    grader_timeout_s=6.0,
    prompt_style="sft",
)
MINI_SIZES = (40, 120, 400)
#: RQ2/RQ3 on the mini tier: correct vs incorrect traces, easy vs harder templates (tiny-qwen only)
MINI_CONTROLLED = (("correct", 120), ("incorrect", 120), ("easy", 120), ("hard", 120))


def mini_study() -> list[RunSpec]:
    """The local mini-valley on the sample corpus's mini tier: tiny students, a baseline and three
    sizes each, plus tiny-qwen's RQ2/RQ3 contrasts."""

    def cell(model: str, size: int, subset: str = "random") -> RunSpec:
        data = DataSpec(source="mini", size=size, subset=subset, seed=42, over_length="truncate")
        return RunSpec(study="mini", model=model, data=data, train=MINI_TRAIN, eval=MINI_EVAL)

    runs = []
    for model in ("tiny-qwen", "tiny-llama"):
        runs.append(RunSpec(study="mini", model=model, eval=MINI_EVAL))
        runs += [cell(model, size) for size in MINI_SIZES]
    runs += [cell("tiny-qwen", size, subset) for subset, size in MINI_CONTROLLED]
    return runs


STUDIES = {"valley": valley_study, "mini": mini_study}


def study_runs(name: str) -> list[RunSpec]:
    try:
        return STUDIES[name]()
    except KeyError:
        raise ValleyError(f"study: unknown study {name!r}; allowed: {', '.join(STUDIES)}") from None


def ordered(runs: list[RunSpec]) -> list[RunSpec]:
    """The runs plus any base run they continue from, each base before its dependants."""
    result: list[RunSpec] = []

    def add(run: RunSpec) -> None:
        if run.base is not None:
            add(run.base)
        if run.name not in {r.name for r in result}:
            result.append(run)

    for run in runs:
        add(run)
    return result


def shared_subsets(runs: list[RunSpec]) -> dict[str, list[str]]:
    """Data key -> labels of the runs that train on that exact subset."""
    shared: dict[str, list[str]] = {}
    for run in runs:
        if run.data is not None:
            shared.setdefault(run.data.key, []).append(run.label)
    return shared


def nested_in(run: RunSpec, runs: list[RunSpec]) -> list[str]:
    """Labels of the larger random subsets that contain this run's subset (1k < 10k < 30k)."""
    if run.data is None or run.data.subset != "random":
        return []
    return sorted(
        {
            format_size(r.data.size)
            for r in runs
            if r.data
            and r.data.subset == "random"
            and r.data.source == run.data.source
            and r.data.seed == run.data.seed
            and r.data.size > run.data.size
        },
        key=lambda s: int(s.rstrip("k")) * (1000 if s.endswith("k") else 1),
    )
