"""Real-width SFT steps on one GPU: the torchtune model, loss, optimizer, dtype and activation
checkpointing that `render_config` writes for the paper's students, timed the way the
full_finetune recipes step (forward, chunked cross-entropy over the unmasked tokens, backward;
one fused AdamW step per `gradient_accumulation_steps` micro-batches).

    python tests/benchmarks/bench_train_gpu.py [--models qwen,llama] [--seq-lens 9000,32768]

Weights are random (the Hub is out of reach where this runs); step time and memory do not depend
on the values. One rank's work: under FSDP on 8 GPUs each rank runs these micro-batches on its
own and holds 1/8 of the parameters, gradients and optimizer states, so the tokens/s here are an
upper bound per GPU (no collectives) and the peak memory is above a rank's. Figures feed
`manager.study.CostAssumptions` (train_tokens_per_s_per_gpu). Without CUDA it runs only tiny
presets (`--models tiny-qwen --seq-lens 256`), as a check of the script itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from valley.spec import DataSpec, RunSpec, TrainSpec  # noqa: E402
from valley.train.config import TrainPaths, plan_steps, render_config  # noqa: E402

#: H100/H200 dense bf16 peak (NVIDIA's datasheet figure without sparsity)
PEAK_BF16_TFLOPS = 989.0
PAPER_SIZE = 10_000


def rendered(preset: str) -> tuple[RunSpec, dict]:
    """The paper's `<preset>-10k` run and its torchtune config as valley renders it for a GPU pod."""
    run = RunSpec(model=preset, data=DataSpec(size=PAPER_SIZE), train=TrainSpec())
    nowhere = Path("/nonexistent")  # paths are rendered, never opened: no checkpoint or data is read
    paths = TrainPaths(nowhere / "data", nowhere / "model", nowhere / "out")
    return run, render_config(run, paths, plan=plan_steps(run, PAPER_SIZE), device="cuda")


def measure(run: RunSpec, config: dict, seq_len: int, micro_batches: int, device: str) -> dict:
    import torch
    from omegaconf import OmegaConf
    from torchtune import config as tune_config
    from torchtune import modules, training

    config = OmegaConf.create({**config, "optimizer": {**config["optimizer"], "fused": device == "cuda"}})
    dtype = training.get_dtype(config.dtype, device=torch.device(device))
    torch.manual_seed(0)
    with training.set_default_dtype(dtype), torch.device(device):
        model = tune_config.instantiate(config.model)
    if config.enable_activation_checkpointing:
        training.set_activation_checkpointing(model, auto_wrap_policy={modules.TransformerSelfAttentionLayer})
    loss_fn = tune_config.instantiate(config.loss)
    model.set_num_output_chunks(loss_fn.num_output_chunks)
    optimizer = tune_config.instantiate(config.optimizer, model.parameters())
    params = sum(p.numel() for p in model.parameters())

    # one example per micro-batch (micro_batch_size 1), its first tenth a masked prompt
    generator = torch.Generator(device="cpu").manual_seed(0)
    vocab_size = model.tok_embeddings.num_embeddings
    tokens = torch.randint(0, vocab_size, (1, seq_len), generator=generator).to(device)
    labels = tokens.clone()
    labels[:, : seq_len // 10] = -100
    labels = torch.hstack((labels[:, 1:], torch.full((1, 1), -100, device=device)))
    trained_tokens = int((labels != -100).sum())

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def micro_batch() -> None:
        logits = model(tokens)
        loss = loss_fn(logits, labels) * trained_tokens
        del logits
        loss.backward()

    def optimizer_step() -> None:
        for p in model.parameters():
            if p.grad is not None:
                p.grad.div_(trained_tokens)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    micro_batch()  # warm-up: kernels chosen, optimizer states allocated below
    optimizer_step()
    sync()
    times = []
    for _ in range(micro_batches):
        started = time.perf_counter()
        micro_batch()
        sync()
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    optimizer_step()
    sync()
    optimizer_s = time.perf_counter() - started
    micro_s = sorted(times)[len(times) // 2]
    accumulation = run.train.gradient_accumulation_steps
    step_s = accumulation * micro_s + optimizer_s
    arch = model.layers[0].attn
    layers, width = len(model.layers), arch.embed_dim
    # model FLOPs per trained token: 6N for the matmuls, 6·layers·width·seq for causal attention
    flops = (6 * params + 6 * layers * width * seq_len) * seq_len * accumulation
    result = {
        "label": run.label,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "params_b": round(params / 1e9, 3),
        "seq_len": seq_len,
        "trained_tokens": trained_tokens,
        "micro_batch_s": round(micro_s, 3),
        "optimizer_step_s": round(optimizer_s, 3),
        "accumulation": accumulation,
        "step_s": round(step_s, 2),
        "trained_tokens_per_s": round(trained_tokens * accumulation / step_s, 1),
        "tokens_per_s": round(seq_len * accumulation / step_s, 1),
    }
    if device == "cuda":
        result["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
        result["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 1)
        result["mfu"] = round(flops / step_s / (PEAK_BF16_TFLOPS * 1e12), 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="qwen,llama", help="comma-separated presets")
    parser.add_argument(
        "--seq-lens",
        default="9000,32768",
        help="tokens per example: the study's mean example (CostAssumptions) and the spec's max_seq_len",
    )
    parser.add_argument("--micro-batches", type=int, default=3, help="timed micro-batches per cell (median kept)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    presets = args.models.split(",")
    if device == "cpu" and not all(p.startswith("tiny-") for p in presets):
        print(
            "bench_train_gpu: no CUDA device; real-width students need a GPU (on CPU pass --models tiny-qwen "
            "--seq-lens 256)"
        )
        return
    rows = []
    for preset in presets:
        run, config = rendered(preset)
        for seq_len in (int(s) for s in args.seq_lens.split(",")):
            row = measure(run, config, seq_len, args.micro_batches, device)
            if device == "cuda":
                torch.cuda.empty_cache()  # the last cell's model and optimizer are gone with measure()
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(
        f"{'run':12} {'seq':>6} {'micro s':>8} {'opt s':>6} {'step s':>7} {'tokens/s':>9} {'trained/s':>9} "
        f"{'peak GiB':>8} {'MFU':>5}"
    )
    for row in rows:
        print(
            f"{row['label']:12} {row['seq_len']:6d} {row['micro_batch_s']:8.3f} {row['optimizer_step_s']:6.3f} "
            f"{row['step_s']:7.2f} {row['tokens_per_s']:9.0f} {row['trained_tokens_per_s']:9.0f} "
            f"{row.get('peak_allocated_gib', 0):8.1f} {row.get('mfu', 0):5.2f}"
        )


if __name__ == "__main__":
    main()
