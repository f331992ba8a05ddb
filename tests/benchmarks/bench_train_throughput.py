"""Tiny SFT throughput: `valley train` (torchtune recipe) against a plain torch loop, same run.

    python tests/benchmarks/bench_train_throughput.py [--preset tiny-qwen] [--size 40]

Both sides train the same tiny student on the same subset (built by `valley data build`'s
Python API) with the same micro-batch, accumulation and AdamW, and count throughput the way
torchtune does: trained (unmasked) tokens per second of optimizer-step time. The recipe's
figure is the median of its logged `tokens_per_second_per_gpu` after the first step; the
baseline is a transformers model with a hand-written padded-batch loop. Also printed: the
end-to-end wall time of `valley train` (imports, data loading, checkpoint export included).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from manager.study import mini_study  # noqa: E402
from valley.spec import model_preset  # noqa: E402


def recipe_throughput(run, model_dir: Path, data_dir: Path, work: Path) -> tuple[float, float]:
    import mlflow

    uri = f"sqlite:///{work / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("bench")).info.run_id
    (work / "run.json").write_text(run.to_json())
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_RUN_ID": run_id,
    }
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "valley",
            "train",
            "--run-spec",
            str(work / "run.json"),
            "--data",
            str(data_dir),
            "--model",
            str(model_dir),
            "--out",
            str(work / "ckpt"),
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    (train_run,) = client.search_runs(
        [client.get_run(run_id).info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'"
    )
    history = sorted(
        client.get_metric_history(train_run.info.run_id, "train/tokens_per_second_per_gpu"), key=lambda m: m.step
    )
    return statistics.median(m.value for m in history[1:]), wall


def baseline_throughput(run, model_dir: Path, data_dir: Path) -> float:
    """Plain torch: HF model, padded micro-batches, masked cross-entropy, AdamW, accumulation."""
    import json

    import torch
    from torchtune.data import Message
    from transformers import AutoModelForCausalLM

    from valley.train.hf_tokenizer import hf_chat_tokenizer

    train = run.train
    tokenizer = hf_chat_tokenizer(str(model_dir), max_seq_len=train.max_seq_len)
    examples = []
    for line in (data_dir / "train.jsonl").read_text().splitlines():
        messages = [
            Message(role=m["role"], content=m["content"], masked=m["role"] != "assistant")
            for m in json.loads(line)["messages"]
        ]
        examples.append(tokenizer.tokenize_messages(messages))
    torch.manual_seed(train.seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay, fused=False)

    def batch(rows):
        width = max(len(tokens) for tokens, _ in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_id)
        labels = torch.full((len(rows), width), -100)
        for i, (tokens, mask) in enumerate(rows):
            ids[i, : len(tokens)] = torch.tensor(tokens)
            labels[i, : len(tokens)] = torch.tensor([-100 if m else t for t, m in zip(tokens, mask, strict=True)])
        return ids, labels

    micro = [
        batch(examples[i : i + train.micro_batch_size])
        for i in range(0, len(examples) - train.micro_batch_size + 1, train.micro_batch_size)
    ]
    rates = []
    for _epoch in range(train.epochs):
        for start in range(0, len(micro) - train.gradient_accumulation_steps + 1, train.gradient_accumulation_steps):
            began, tokens = time.perf_counter(), 0
            group = micro[start : start + train.gradient_accumulation_steps]
            total = sum(int((labels[:, 1:] != -100).sum()) for _, labels in group)
            for ids, labels in group:
                logits = model(ids).logits[:, :-1].float()
                target = labels[:, 1:]
                loss = (
                    torch.nn.functional.cross_entropy(
                        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100, reduction="sum"
                    )
                    / total
                )
                loss.backward()
                tokens += int((target != -100).sum())
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            rates.append(tokens / (time.perf_counter() - began))
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny-qwen", choices=["tiny-qwen", "tiny-llama"])
    parser.add_argument("--size", type=int, default=40, choices=[40, 120, 300])
    args = parser.parse_args()

    from valley.data.build import build_subset
    from valley.train.fetch import fetch_model

    run = next(r for r in mini_study() if r.model.preset == args.preset and r.data and r.data.size == args.size)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = work / "model"
        fetch_model(model_preset(args.preset), model_dir)
        data_dir = work / "data"
        build_subset(run, model_dir, data_dir)
        recipe, wall = recipe_throughput(run, model_dir, data_dir, work)
        baseline = baseline_throughput(run, model_dir, data_dir)

    print(
        f"tiny SFT throughput, {run.label} ({args.size} examples, micro-batch {run.train.micro_batch_size}, "
        f"accumulation {run.train.gradient_accumulation_steps}, {run.train.epochs} epochs, CPU, "
        f"{os.cpu_count()} cores)"
    )
    print(f"  plain torch loop (baseline)   {baseline:10.0f} trained tokens/s   1.00x")
    print(f"  valley train (torchtune)      {recipe:10.0f} trained tokens/s   {recipe / baseline:.2f}x")
    print(f"  valley train end to end       {wall:10.1f} s wall (imports, data, checkpoint export included)")


if __name__ == "__main__":
    main()
