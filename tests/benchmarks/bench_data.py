"""Benchmark: `build_subset` for 1k/10k/30k random subsets from a synthetic ~31k-row OCR2 pool
(30k plus room for the over-length examples the drop policy skips).

Responses have realistic reasoning lengths (log-normal, median ~3,500 tokens, a tail past
16k), built from the sample corpus's own text so token statistics look like code reasoning.
The baseline, measured in the same run on the first 1k rows, is the floor any builder pays:
tokenizing the rendered examples with the student's tokenizer. Figures are printed as rows/s,
tokens/s and the ratio to that baseline. Subsets are built smallest first into one directory,
as a study does, so the larger builds reuse the token lengths the smaller ones cached (the
"new tokens" column is what each build actually tokenized).

Run: python tests/benchmarks/bench_data.py   (VALLEY_BENCH_SCALE=0.1 for a quick pass)
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from valley.data.build import build_subset  # noqa: E402
from valley.data.packaged import SAMPLE_DIR  # noqa: E402
from valley.data.tokens import load_tokenizer  # noqa: E402
from valley.spec import DataSpec, RunSpec, TrainSpec  # noqa: E402

SCALE = float(os.environ.get("VALLEY_BENCH_SCALE", "1"))
POOL = int(31_000 * SCALE)  # 30k plus room for the examples the drop policy skips
SIZES = [max(1, int(s * SCALE)) for s in (1_000, 10_000, 30_000)]


def synthetic_pool(out: Path, rows: int) -> None:
    """ocr2.jsonl (+ the sample's taco.jsonl) with long responses stitched from the sample corpus."""
    rng = random.Random(0)
    corpus = [json.loads(line) for line in (SAMPLE_DIR / "ocr2.jsonl").read_text().splitlines()]
    thoughts = [r["r1_generation"].split("</think>")[0].removeprefix("<think>\n") for r in corpus]
    out.mkdir(parents=True, exist_ok=True)
    (out / "taco.jsonl").write_bytes((SAMPLE_DIR / "taco.jsonl").read_bytes())
    with open(out / "ocr2.jsonl", "w") as handle:
        for number in range(rows):
            base = corpus[number % len(corpus)]
            # ~3.2 characters per token for this tokenizer on this text; median ~3,500 tokens
            target_chars = int(math.exp(rng.gauss(math.log(3_500), 0.6)) * 3.2)
            parts = []
            while sum(map(len, parts)) < target_chars:
                parts.append(rng.choice(thoughts))
            answer = base["r1_generation"].split("</think>", 1)[1]
            row = {
                **base,
                "id": f"synthetic-{number:06d}",
                "question_id": f"q{number // 7:05d}",
                "r1_generation": "<think>\n" + "\n\n".join(parts)[:target_chars] + "\n</think>" + answer,
            }
            handle.write(json.dumps(row) + "\n")


def baseline(local: Path, tokenizer, rows: int) -> tuple[float, int]:
    """Seconds and tokens for the floor any builder pays on `rows` examples: tokenizing their
    already-rendered chat text with the student's tokenizer (rendering and I/O not timed)."""
    from valley.data.build import _messages, load_corpus

    corpus = load_corpus("ocr2", local)
    texts = tokenizer.apply_chat_template([_messages(corpus, corpus.ocr2[n]) for n in range(rows)], tokenize=False)
    start = time.perf_counter()
    tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return time.perf_counter() - start, tokens


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = tmp_path / "tiny-qwen"
        subprocess.run(
            [sys.executable, "-m", "valley", "model", "fetch", "--preset", "tiny-qwen", "--out", str(model)],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        local = tmp_path / "pool"
        started = time.perf_counter()
        synthetic_pool(local, POOL)
        size_mb = (local / "ocr2.jsonl").stat().st_size / 1e6
        print(
            f"synthetic pool: {POOL} rows, {size_mb:.0f} MB, written in {time.perf_counter() - started:.1f}s "
            f"(cpu count {os.cpu_count()})"
        )

        tokenizer = load_tokenizer(model)
        base_s, base_tokens = baseline(local, tokenizer, SIZES[0])
        base_rows_s, base_tokens_s = SIZES[0] / base_s, base_tokens / base_s
        print(f"baseline (tokenize {SIZES[0]} rendered rows): {base_rows_s:,.0f} rows/s, {base_tokens_s:,.0f} tokens/s")

        train = TrainSpec(max_seq_len=16_384, gpus_per_node=1, global_batch_size=8)
        print(
            f"{'size':>7} {'seconds':>8} {'rows/s':>8} {'tokens/s':>11} {'x baseline':>10} {'new rows':>9} "
            f"{'mean tok':>9} {'>16k share':>10}"
        )
        subsets = tmp_path / "data"
        for size in SIZES:
            spec = RunSpec(model="tiny-qwen", data=DataSpec(source="ocr2", size=size, over_length="drop"), train=train)
            cached = sum(len(p.read_text().splitlines()) for p in subsets.glob(".token-lengths/*"))
            start = time.perf_counter()
            manifest = json.loads(build_subset(spec, model, subsets / f"random-{size}", local).read_text())
            seconds = time.perf_counter() - start
            fresh = sum(len(p.read_text().splitlines()) for p in subsets.glob(".token-lengths/*")) - cached
            stats = manifest["token_stats"]
            tokens_s = stats["tokens_kept"] / seconds
            print(
                f"{size:>7} {seconds:>8.1f} {size / seconds:>8,.0f} {tokens_s:>11,.0f} "
                f"{tokens_s / base_tokens_s:>10.2f} "
                f"{fresh:>9} {stats['mean']:>9,.0f} {stats['share_above_max_seq_len']:>10.4f}"
            )


if __name__ == "__main__":
    main()
