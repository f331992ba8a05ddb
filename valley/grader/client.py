"""Grade through a grader server (the eval pod's sidecar): stdlib urllib.

One request per problem; its rows are appended (fsynced) to the verdict file as soon as they
come back, so a killed client resumes without regrading or duplicating what it already has.
429, 503, connection errors and timeouts are retried with backoff (Retry-After when the server
sends one) until `patience_s` of consecutive failures; each request's deadline scales with the
work in it (generations × tests × per-test timeout).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from valley.grader.grading import VerdictFile, problem_from_row
from valley.grader.problem import Problem

BACKOFF_S = (0.5, 1, 2, 4, 8, 16, 30)
REQUEST_BASE_S = 60.0  # sandbox start, queueing behind other requests, transfer


class GraderUnavailable(RuntimeError):
    """The server could not be reached or kept refusing for `patience_s`."""


def grade_remote(
    url: str,
    problems: list[dict | Problem] | dict[str, dict | Problem],
    generations: list[dict],
    out_path: str | Path,
    *,
    concurrency: int = 4,
    early_stop: bool = True,
    test_timeout_s: float | None = None,
    patience_s: float = 900,
) -> int:
    """Grade `generations` into `out_path` (resumed when it exists); returns the rows written.

    `problems` are LCB rows (dataset schema), `Problem.to_dict()` rows or `Problem`s.
    `test_timeout_s` overrides the per-test timeout (default: the problem's, 6 s for LCB).
    """
    by_id: dict[str, tuple[dict, Problem]] = {}
    for problem in problems.values() if isinstance(problems, dict) else problems:
        data = problem.to_dict() if isinstance(problem, Problem) else problem
        by_id[str(data["question_id"])] = (data, problem if isinstance(problem, Problem) else problem_from_row(data))
    verdicts = VerdictFile(out_path)
    groups: dict[str, list[dict]] = defaultdict(list)
    for generation in generations:
        if not verdicts.is_done(generation):
            groups[str(generation["question_id"])].append(generation)
    endpoint = url.rstrip("/") + "/grade"

    def send(question_id: str) -> int:
        data, problem = by_id[question_id]
        batch = groups[question_id]
        body = {"problems": [data], "generations": batch, "early_stop": early_stop, "timeout_s": test_timeout_s}
        deadline_s = REQUEST_BASE_S + len(batch) * len(problem.tests) * (test_timeout_s or problem.timeout_s)
        rows = _post(endpoint, json.dumps(body).encode(), deadline_s, patience_s)["rows"]
        verdicts.write(rows)
        return len(rows)

    with verdicts, ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(send, groups))


def _post(endpoint: str, data: bytes, deadline_s: float, patience_s: float) -> dict:
    attempt, refusing_since = 0, time.monotonic()
    while True:
        request = urllib.request.Request(
            endpoint, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        wait_s = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
        try:
            with urllib.request.urlopen(request, timeout=deadline_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code not in (429, 503):
                raise GraderUnavailable(
                    f"{endpoint}: HTTP {error.code}: {error.read()[:500].decode(errors='replace')}"
                ) from error
            wait_s = max(wait_s, float(error.headers.get("Retry-After") or 0))
            reason = f"HTTP {error.code}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            reason = str(error)
        if time.monotonic() + wait_s - refusing_since > patience_s:
            raise GraderUnavailable(
                f"{endpoint}: still failing after {patience_s:.0f} s ({reason}); check the grader sidecar's log"
            )
        time.sleep(wait_s)
        attempt += 1


def health(url: str, timeout_s: float = 2) -> dict | None:
    """The server's /healthz answer, or None when it is not up."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=timeout_s) as response:
            return json.loads(response.read()) if response.status == 200 else None
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None
