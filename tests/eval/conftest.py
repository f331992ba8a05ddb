"""Eval fixtures: one tiny student per session, built by the real `valley model fetch`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LCB_FIXTURE = Path(__file__).with_name("lcb_fixture.jsonl")


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny-qwen student (random init, Qwen2 architecture, ChatML template), built once."""
    out = tmp_path_factory.mktemp("models") / "tiny-qwen"
    subprocess.run([sys.executable, "-m", "valley", "model", "fetch", "--preset", "tiny-qwen", "--out", str(out)],
                   check=True, capture_output=True)
    return out
