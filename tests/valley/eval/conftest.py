"""Eval fixtures: the tiny students, each built once per session by the real `valley model fetch`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LCB_FIXTURE = Path(__file__).with_name("lcb_fixture.jsonl")


def fetch(preset: str, root: Path) -> Path:
    out = root / preset
    subprocess.run(
        [sys.executable, "-m", "valley", "model", "fetch", "--preset", preset, "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random-init Qwen2 architecture with Qwen2.5's chat template."""
    return fetch("tiny-qwen", tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random-init Llama 3.1 architecture with its chat template (which writes the BOS itself)."""
    return fetch("tiny-llama", tmp_path_factory.mktemp("models"))
