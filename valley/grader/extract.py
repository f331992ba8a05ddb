"""Code extraction from a raw model response."""

from __future__ import annotations

import re

THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)


def strip_think(response: str) -> str:
    """Drop the reasoning so a code block inside it is never graded.

    A response cut off inside its reasoning (an opening tag, no closing tag) has no answer at all;
    a closing tag without an opening one (templates that pre-fill `<think>`) keeps what follows it.
    """
    stripped = THINK_BLOCK.sub("", response)
    if "</think>" in stripped:
        return stripped.rsplit("</think>", 1)[1]
    if "<think>" in stripped:
        return stripped.split("<think>", 1)[0]
    return stripped


def extract_code(response: str) -> str:
    """LiveCodeBench's rule (lcb_runner/utils/extraction_utils.py): the text between the last
    two lines that contain a fence; "" when there are fewer than two."""
    lines = strip_think(response).split("\n")
    fences = [index for index, line in enumerate(lines) if "```" in line]
    if len(fences) < 2:
        return ""
    return "\n".join(lines[fences[-2] + 1 : fences[-1]])
