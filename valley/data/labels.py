"""RQ2 labels: a TACO-sourced response is `correct` iff its extracted code passes all its problem's TACO tests.

Grading goes through `valley.grader` (the same sandbox, extraction and TACO output comparison
the eval path trusts). Results are cached under `cache_dir` by a content hash of (the problem's
tests, the extracted code, the grader semantics version), so relabelling is free, an
interrupted run resumes where it stopped, and identical code for the same problem is graded
once. A grader infrastructure failure is its own label (`infra_error`), is never cached, and
puts the response in neither subset.

On a cluster the programs are graded by the gVisor grader sidecar (`grader_url`), which mounts
no volume but its scratch: in-process grading there is refused, so the graded programs never
share a pod sandbox, or a volume, with the datasets and this cache.
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
        if not (
            isinstance(spec, dict)
            and isinstance(spec.get("inputs"), list)
            and isinstance(spec.get("outputs"), list)
            and len(spec["inputs"]) == len(spec["outputs"])
        ):
            raise ValueError("needs 'inputs' and 'outputs' lists of equal length")
        return from_taco_row({"input_output": spec}, item.where)
    except (ValueError, TypeError, KeyError) as error:
        raise ValleyError(
            f"{item.where}.input_output: malformed ({error}); expected a JSON object with "
            "inputs, outputs and optional fn_name — fix or drop that row"
        ) from None


def cache_key(item: LabelItem) -> str:
    from valley.grader.extract import extract_code

    payload = json.dumps([LABEL_VERSION, item.input_output, extract_code(item.response)])
    return hashlib.sha256(payload.encode()).hexdigest()


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.json"


def label_responses(
    items: list[LabelItem],
    cache_dir: Path,
    *,
    sandbox: str = "auto",
    workers: int | None = None,
    grader_url: str | None = None,
) -> dict[str, str]:
    """{id: correct|incorrect|infra_error} for every item, grading only what the cache lacks;
    through the grader at `grader_url` when given, else in-process in `sandbox`."""
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

    workers = workers or max(1, os.cpu_count() or 1)
    statuses = (
        {}
        if not todo
        else (
            _grade_remote(grader_url, todo, problems, cache_dir, workers)
            if grader_url
            else _grade_here(todo, problems, sandbox, workers)
        )
    )
    graded: dict[str, str] = {}
    for key, status in statuses.items():
        label = "correct" if status == "pass" else "infra_error" if status == "infra_error" else "incorrect"
        graded[key] = label
        if label != "infra_error":
            write_atomic(_cache_path(cache_dir, key), json.dumps({"label": label, "verdict": status}))
    for item in items:
        if item.id not in labels:
            labels[item.id] = graded[keys[item.id]]
    return labels


def _grade_here(todo: dict[str, LabelItem], problems: dict, sandbox: str, workers: int) -> dict[str, str]:
    """{cache key: verdict status}, graded in this process's sandboxes (never on a cluster)."""
    from valley.grader.grading import grade
    from valley.grader.isolation import IsolationUnavailable, on_cluster, refuse_unsafe_on_cluster, require_isolation

    # an IsolationUnavailable is a ConfigError: the command exits 3
    if on_cluster():
        raise IsolationUnavailable(
            "RQ2 labels on a cluster are graded by the gVisor grader sidecar; pass --grader-url "
            "(the rendered data Job does)"
        )
    refuse_unsafe_on_cluster(sandbox, "--sandbox")
    kind = require_isolation(sandbox)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        verdicts = pool.map(lambda item: grade(problems[item.where], item.response, sandbox=kind), todo.values())
        return {key: verdict.status for key, verdict in zip(todo, verdicts, strict=True)}


def _grade_remote(
    url: str, todo: dict[str, LabelItem], problems: dict, cache_dir: Path, workers: int
) -> dict[str, str]:
    """{cache key: verdict status}, graded by the grader server at `url`. Its rows land in a
    resumable verdict file first, so a killed build regrades nothing it already got back."""
    from dataclasses import replace

    from valley.grader.client import GraderUnavailable, grade_remote
    from valley.grader.grading import read_verdicts

    as_problems = {key: replace(problems[item.where], question_id=key) for key, item in todo.items()}
    generations = [{"question_id": key, "sample_id": 0, "response": item.response} for key, item in todo.items()]
    verdicts = cache_dir / "remote-verdicts.jsonl"
    try:
        grade_remote(url, as_problems, generations, verdicts, concurrency=workers)
    except GraderUnavailable as error:
        raise ValleyError(f"--grader-url: {error}; rerun to resume") from None
    rows = read_verdicts(verdicts)
    return {key: rows[(key, "0")]["verdict"] for key in todo}
