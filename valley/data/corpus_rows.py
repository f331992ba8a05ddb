"""Rows in the three real schemas, for the corpora valley generates and ships (the sample and its mini tier).

Both generators (`valley.data.sample_corpus`, `valley.data.mini_tier`) fill the same columns in the
same order through these builders; the order is part of the shipped bytes, and the columns are what
the loaders in `valley.data.sources` require of the real datasets.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date

from valley.data.sources import lcb_difficulty
from valley.grader.lcb import encode_private_tests

#: how a stdin program reads each input shape (the first line of a list is its length)
STDIN_READERS = {
    "list": "n = int(input())\nnums = list(map(int, input().split()))\n",
    "int": "n = int(input())\n",
    "str": "s = input().strip()\n",
    "list_k": "n, k = map(int, input().split())\nnums = list(map(int, input().split()))\n",
    "two_str": "a = input().strip()\nb = input().strip()\n",
}


def stable_id(text: str) -> str:
    """A 32-hex-digit id derived from `text`, the shape of OCR2's `id`/`question_id`."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def taco_row(
    *,
    question: str,
    solution: str,
    starter_code: str,
    inputs: list,
    outputs: list,
    fn_name: str | None,
    difficulty: str,
    name: str,
    source: str,
    url: str,
    day: date,
    tags: tuple[str, ...] = ("Implementation",),
    auxiliary_space: str | None = None,
) -> dict:
    """A BAAI/TACO row: every column a string (JSON strings for lists), `fn_name` only for call-based problems."""
    call_based = fn_name is not None
    tests = (
        {"fn_name": fn_name, "inputs": inputs, "outputs": outputs}
        if call_based
        else {"inputs": inputs, "outputs": outputs}
    )
    return {
        "question": question,
        "solutions": json.dumps([solution]),
        "starter_code": starter_code,
        "input_output": json.dumps(tests),
        "difficulty": difficulty,
        "raw_tags": json.dumps(list(tags)),
        "name": name,
        "source": source,
        "tags": json.dumps(list(tags)),
        "skill_types": json.dumps([t for t in tags if t != "Implementation"]),
        "url": url,
        "Expected Auxiliary Space": auxiliary_space,
        "time_limit": None if call_based else "1 second",
        "date": day.isoformat(),
        "picture_num": "0",
        "memory_limit": None if call_based else "256 megabytes",
        "Expected Time Complexity": "O(n)" if call_based else None,
    }


def ocr2_row(
    *,
    response_id: str,
    question_id: str,
    generation: str,
    critique: str,
    solution: str,
    wrong: bool,
    passed_share: float,
    source: str,
    difficulty: str,
    index: int,
) -> dict:
    """An nvidia/OpenCodeReasoning-2 `python`-split row answering TACO train[index] (`question` is "-", as there)."""
    judgement = "wrong" if wrong else "right"
    return {
        "id": response_id,
        "question_id": question_id,
        "question": "-",
        "r1_generation": generation,
        "qwq_critique": f"{critique}\n\nJudgement: {judgement}",
        "solution": solution,
        "judgement": judgement,
        "pass_rate": f"{passed_share:.3f}",
        "source": source,
        "license": "cc-by-4.0",
        "dataset": "taco",
        "split": "train",
        "difficulty": difficulty,
        "index": str(index),
    }


def lcb_test(given: str, expected: str, functional: bool) -> dict:
    return {"input": given, "output": expected, "testtype": "functional" if functional else "stdin"}


def lcb_row(
    *,
    title: str,
    content: str,
    platform: str,
    question_id: str,
    contest_id: str,
    contest_day: date,
    starter_code: str,
    taco_difficulty: str,
    tests: list[dict],
    metadata: dict,
) -> dict:
    """A livecodebench/code_generation_lite row: two public tests, the rest packed as the dataset packs them."""
    return {
        "question_title": title,
        "question_content": content,
        "platform": platform,
        "question_id": question_id,
        "contest_id": contest_id,
        "contest_date": f"{contest_day.isoformat()}T00:00:00",
        "starter_code": starter_code,
        "difficulty": lcb_difficulty(taco_difficulty),
        "public_test_cases": json.dumps(tests[:2]),
        "private_test_cases": encode_private_tests(tests[2:]),
        "metadata": json.dumps(metadata),
    }
