"""Shared by the tests/valley/train files: tiny students built once per session, a small SFT subset."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from manager.study import mini_study
from valley.spec import RunSpec

_MODELS: dict[str, Path] = {}


def tiny_model(tmp_path_factory: pytest.TempPathFactory, preset: str) -> Path:
    """A tiny student built through the real `valley model fetch` code path, once per session."""
    if preset not in _MODELS:
        from valley.spec import model_preset
        from valley.train.fetch import fetch_model

        out = tmp_path_factory.mktemp("models") / preset
        fetch_model(model_preset(preset), out)
        _MODELS[preset] = out
    return _MODELS[preset]


def mini_run(preset: str, size: int = 40) -> RunSpec:
    return next(r for r in mini_study() if r.model.preset == preset and r.data and r.data.size == size)


def write_subset(data_dir: Path, rows: int, seed: int = 0) -> Path:
    """openai-style SFT rows like `valley data build` writes: a coding question, a <think> answer."""
    rng = random.Random(seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for _ in range(rows):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        question = f"Read two integers and print their sum.\n\nExample input:\n{a} {b}\n\nExample output:\n{a + b}"
        answer = (
            f"<think>\nThe output is a + b; for {a} and {b} that is {a + b}.\n</think>\n"
            "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
        )
        lines.append(
            json.dumps({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
        )
    (data_dir / "train.jsonl").write_text("\n".join(lines) + "\n")
    return data_dir
