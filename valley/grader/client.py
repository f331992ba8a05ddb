"""Grade through a grader server (the eval pod's sidecar): stdlib urllib, retries on 429/503."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from valley.grader.problem import Problem

BACKOFF_S = (0.5, 1, 2, 4, 8)


class GraderUnavailable(RuntimeError):
    """The server could not be reached or kept refusing until the deadline."""


def grade_remote(
    url: str,
    problems: list[dict | Problem] | dict[str, dict | Problem],
    generations: list[dict],
    *,
    concurrency: int = 4,
    timeout_s: float = 3600,
    early_stop: bool = True,
    test_timeout_s: float | None = None,
) -> list[dict]:
    """Verdict rows for `generations`, in their order; one request per problem.

    `problems` are LCB rows (dataset schema) or `Problem`s. 429 and 503 are retried after the
    server's Retry-After, connection errors with backoff, until `timeout_s` has passed.
    `test_timeout_s` overrides the per-test timeout (default: the problem's, 6 s for LCB).
    """
    rows = problems.values() if isinstance(problems, dict) else problems
    by_id = {}
    for problem in rows:
        data = problem.to_dict() if isinstance(problem, Problem) else problem
        by_id[str(data["question_id"])] = data
    groups: dict[str, list[int]] = defaultdict(list)
    for index, generation in enumerate(generations):
        groups[str(generation["question_id"])].append(index)
    deadline = time.monotonic() + timeout_s
    endpoint = url.rstrip("/") + "/grade"

    def send(question_id: str) -> tuple[list[int], list[dict]]:
        indices = groups[question_id]
        body = {"problems": [by_id[question_id]], "generations": [generations[i] for i in indices],
                "early_stop": early_stop, "timeout_s": test_timeout_s}
        return indices, _post(endpoint, json.dumps(body).encode(), deadline)["rows"]

    results: list[dict | None] = [None] * len(generations)
    with ThreadPoolExecutor(concurrency) as pool:
        for indices, answer in pool.map(send, groups):
            for index, row in zip(indices, answer):
                results[index] = row
    return results  # type: ignore[return-value]


def _post(endpoint: str, data: bytes, deadline: float) -> dict:
    attempt = 0
    while True:
        request = urllib.request.Request(endpoint, data=data, headers={"Content-Type": "application/json"}, method="POST")
        wait_s = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
        try:
            with urllib.request.urlopen(request, timeout=max(1.0, deadline - time.monotonic())) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code not in (429, 503):
                raise GraderUnavailable(f"{endpoint}: HTTP {error.code}: {error.read()[:500].decode(errors='replace')}") from error
            wait_s = float(error.headers.get("Retry-After") or wait_s)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            if time.monotonic() + wait_s > deadline:
                raise GraderUnavailable(f"{endpoint}: {error}") from error
        if time.monotonic() + wait_s > deadline:
            raise GraderUnavailable(f"{endpoint}: still refusing when the deadline passed")
        time.sleep(wait_s)
        attempt += 1


def healthy(url: str, timeout_s: float = 2) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
