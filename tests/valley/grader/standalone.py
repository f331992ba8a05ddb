"""The grader as its image holds it: exactly the files the grader Dockerfile copies, laid out
under a directory of the test's choosing, for graders run as another uid or inside gVisor."""

from __future__ import annotations

from pathlib import Path

from manager.images import copied_files
from tests.conftest import ROOT


def grader_package(directory: Path) -> Path:
    """Copy the grader image's files under `directory`; returns the directory to put on sys.path."""
    for relative in copied_files("grader"):
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / relative).read_bytes())
    return directory
