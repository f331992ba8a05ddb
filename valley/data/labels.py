"""RQ2 labels: a TACO-sourced response is `correct` iff its extracted code passes all its problem's TACO tests.

Grading goes through `valley.grader` (the same sandbox, extraction and TACO output comparison
the eval path trusts). Results are cached under `cache_dir` by a content hash of (the problem's
tests, the extracted code, the grader semantics version), so relabelling is free, an
interrupted run resumes where it stopped, and identical code for the same problem is graded
once. A grader infrastructure failure is its own label (`infra_error`), is never cached, and
puts the response in neither subset.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from valley.errors import ValleyError
from valley.files import write_atomic

#: bump when the meaning of a cached label changes (grader semantics, extraction rule)
LABEL_VERSION = "taco-all-tests/1"
LABELS = ("correct", "incorrect", "infra_error")


@dataclass(frozen=True)
class LabelItem:
    """One response to label: its OCR2 id, the raw response, and the TACO row it answers."""

    id: str
    response: str
    input_output: str
    where: str  # e.g. "taco train[12]", for error messages


def _problem(item: LabelItem):
    from valley.grader.problem import from_taco_row

    try:
        spec = json.loads(item.input_output)
        if not (isinstance(spec, dict) and isinstance(spec.get("inputs"), list) and isinstance(spec.get("outputs"), list)
                and len(spec["inputs"]) == len(spec["outputs"])):
            raise ValueError("needs 'inputs' and 'outputs' lists of equal length")
        return from_taco_row({"input_output": spec}, item.where)
    except (ValueError, TypeError, KeyError) as error:
        raise ValleyError(f"{item.where}.input_output: malformed ({error}); expected a JSON object with "
                          "inputs, outputs and optional fn_name — fix or drop that row") from None


def cache_key(item: LabelItem) -> str:
    from valley.grader.extract import extract_code

    payload = json.dumps([LABEL_VERSION, item.input_output, extract_code(item.response)])
    return hashlib.sha256(payload.encode()).hexdigest()


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.json"


def label_responses(items: list[LabelItem], cache_dir: Path, *, sandbox: str = "auto",
                    workers: int | None = None) -> dict[str, str]:
    """{id: correct|incorrect|infra_error} for every item, grading only what the cache lacks."""
    problems = {item.where: _problem(item) for item in items}  # malformed tests fail before any grading
    keys = {item.id: cache_key(item) for item in items}
    labels: dict[str, str] = {}
    todo: dict[str, LabelItem] = {}
    for item in items:
        path = _cache_path(cache_dir, keys[item.id])
        if path.exists():
            labels[item.id] = json.loads(path.read_text())["label"]
        else:
            todo.setdefault(keys[item.id], item)

    def grade_one(item: LabelItem) -> tuple[str, str, str]:
        from valley.grader.grading import grade

        verdict = grade(problems[item.where], item.response, sandbox=sandbox)
        label = "correct" if verdict.passed else "infra_error" if verdict.status == "infra_error" else "incorrect"
        return keys[item.id], label, verdict.status

    graded: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=workers or max(1, os.cpu_count() or 1)) as pool:
        for key, label, status in pool.map(grade_one, todo.values()):
            graded[key] = label
            if label != "infra_error":
                write_atomic(_cache_path(cache_dir, key), json.dumps({"label": label, "verdict": status}))
    for item in items:
        if item.id not in labels:
            labels[item.id] = graded[keys[item.id]]
    return labels

