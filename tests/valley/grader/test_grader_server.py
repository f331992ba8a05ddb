"""The grader sidecar as a real process on a free port: health, grading through the client,
request-size limit (413), bounded queue (429), and the stdlib-only entrypoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from manager.mlflow_ui import free_port
from valley.grader.client import GraderUnavailable, grade_remote, health
from valley.grader.grading import read_verdicts

ROOT = Path(__file__).resolve().parents[3]
SLEEPER = "```python\nimport time\ntime.sleep(30)\n```"


def problem_row(question_id: str = "double") -> dict:
    cases = [{"input": f"{i}\n", "output": f"{2 * i}\n", "testtype": "stdin"} for i in (1, 2, 3)]
    return {
        "question_id": question_id,
        "question_title": "t",
        "question_content": "c",
        "platform": "atcoder",
        "contest_id": "c",
        "contest_date": "2024-09-01T00:00:00",
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps(cases[:1]),
        "private_test_cases": json.dumps(cases[1:]),
        "metadata": "{}",
    }


def start_server(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    return start_server_on(free_port(), *args, env=env)


def start_server_on(port: int, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    # -S -I: no site-packages, no PYTHONPATH: the entrypoint must run on the standard library alone
    process = subprocess.Popen(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); from valley.grader.__main__ import main; sys.exit(main())",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--sandbox",
            "process",
            *args,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while health(url) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"server did not start: {process.stderr.read()}")
        time.sleep(0.1)
    return process, url


def health_when(url: str, ready, deadline_s: float = 30) -> tuple[int, dict]:
    """Poll GET /healthz until `ready(status, body)` holds: the readiness signal tests wait on
    instead of sleeping (every wait has a deadline)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
                answer = response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            answer = error.code, json.loads(error.read() or b"{}")
        if ready(*answer):
            return answer
        assert time.monotonic() < deadline, f"/healthz never got ready: {answer}"
        time.sleep(0.05)


@pytest.fixture
def server():
    process, url = start_server("--workers", "2", "--max-pending", "1", "--max-request-mb", "1")
    yield url
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    finally:
        process.kill()


def post(url: str, body: bytes) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        url + "/grade", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"{}")


def test_health_and_grading_through_the_client(server, tmp_path):
    with urllib.request.urlopen(server + "/healthz") as response:
        health = json.loads(response.read())
    assert health["ok"] and health["sandbox"] == "process" and health["isolated"] and health["workers"] == 2
    generations = [
        {"question_id": "double", "sample_id": 0, "response": "```python\nprint(int(input()) * 2)\n```"},
        {"question_id": "double", "sample_id": 1, "response": "```python\nprint(int(input()) + 1)\n```"},
        {
            "question_id": "other",
            "sample_id": 0,
            "response": "<think>```python\nprint(0)\n```</think>```python\nprint(int(input()) * 2)\n```",
        },
    ]
    out = tmp_path / "verdicts.jsonl"
    assert (
        grade_remote(
            server, [problem_row("double"), problem_row("other")], generations, out, concurrency=1, test_timeout_s=3
        )
        == 3
    )
    rows = read_verdicts(out)
    assert {key: r["verdict"] for key, r in rows.items()} == {
        ("double", "0"): "pass",
        ("double", "1"): "wrong_answer",
        ("other", "0"): "pass",
    }
    assert [t["status"] for t in rows[("double", "0")]["tests"]] == ["pass"] * 3
    assert (
        grade_remote(server, [problem_row("double"), problem_row("other")], generations, out) == 0
    )  # all there: nothing resent


def test_oversized_request_gets_413(server):
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(
            "POST /grade HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
            f"{5 * 1024 * 1024}\r\n\r\n".encode()
        )
        status_line = connection.makefile("rb").readline()
    assert b" 413 " in status_line


def test_full_queue_gets_429_with_retry_after_and_the_client_waits(server, tmp_path):
    slow = json.dumps(
        {
            "problems": [problem_row()],
            "generations": [{"question_id": "double", "sample_id": 0, "response": SLEEPER}],
            "timeout_s": 2,
        }
    ).encode()
    first = threading.Thread(target=post, args=(server, slow))
    first.start()
    health_when(server, lambda _status, body: body["pending"] == 1)  # admitted; its sleeper runs 6 s
    status, headers, body = post(server, slow)
    assert status == 429 and headers["Retry-After"] == "1" and "pending" in body["error"]
    # grade_remote retries the 429 until the slot frees up
    out = tmp_path / "verdicts.jsonl"
    grade_remote(
        server,
        [problem_row()],
        [{"question_id": "double", "sample_id": 9, "response": "```python\nprint(int(input()) * 2)\n```"}],
        out,
    )
    first.join()
    assert read_verdicts(out)[("double", "9")]["passed"]


def test_bad_request_is_400_with_the_reason(server):
    status, _, body = post(
        server,
        json.dumps(
            {"problems": [problem_row()], "generations": [{"question_id": "missing", "sample_id": 0, "response": ""}]}
        ).encode(),
    )
    assert status == 400 and "missing" in body["error"]


def test_sigterm_drains_running_requests_and_refuses_new_ones():
    process, url = start_server("--workers", "1")
    slow = json.dumps(
        {
            "problems": [problem_row()],
            "generations": [{"question_id": "double", "sample_id": 0, "response": SLEEPER}],
            "timeout_s": 2,
        }
    ).encode()
    answers: list[int] = []
    first = threading.Thread(target=lambda: answers.append(post(url, slow)[0]))
    first.start()
    health_when(url, lambda _status, body: body["pending"] == 1)
    process.send_signal(signal.SIGTERM)
    status, body = health_when(url, lambda status, _body: status != 200)
    assert status == 503 and body["pending"] == 1  # draining, the running request not done yet
    assert post(url, slow)[0] == 503
    first.join()
    assert answers == [200]  # the running request finished
    assert process.wait(timeout=20) == 0


def test_typer_serve_command_is_wired(valley):
    result = valley(["grader", "serve", "--help"])
    assert "--max-pending" in result.stdout and "127.0.0.1" in result.stdout


def test_stdlib_entrypoint_grades_a_file(tmp_path):
    problems, generations, out = tmp_path / "p.jsonl", tmp_path / "g.jsonl", tmp_path / "v.jsonl"
    problems.write_text(json.dumps(problem_row()) + "\n")
    generations.write_text(
        json.dumps({"question_id": "double", "sample_id": 0, "response": "```python\nprint(int(input()) * 2)\n```"})
        + "\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); from valley.grader.__main__ import main; sys.exit(main())",
            "grade",
            "--problems",
            str(problems),
            "--generations",
            str(generations),
            "--out",
            str(out),
            "--sandbox",
            "process",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert json.loads(out.read_text())["passed"] is True


def test_client_waits_for_a_server_that_is_not_up_yet_and_gives_up_after_its_patience(tmp_path):
    port = free_port()
    generations = [{"question_id": "double", "sample_id": 0, "response": "```python\nprint(int(input()) * 2)\n```"}]
    with pytest.raises(GraderUnavailable, match="still failing"):
        grade_remote(f"http://127.0.0.1:{port}", [problem_row()], generations, tmp_path / "never.jsonl", patience_s=1)
    late: list = []
    starter = threading.Timer(1.5, lambda: late.append(start_server_on(port)))
    starter.start()
    out = tmp_path / "verdicts.jsonl"
    try:
        grade_remote(f"http://127.0.0.1:{port}", [problem_row()], generations, out, patience_s=60)
    finally:
        starter.join()
        for process, _url in late:
            process.kill()
    assert read_verdicts(out)[("double", "0")]["passed"]


def test_a_killed_client_resumes_without_regrading_or_duplicates(server, tmp_path):
    """Rows land per problem as they come back: killing the client after the first problem
    keeps that problem's rows, and the rerun sends only the rest."""
    problems = [problem_row(f"p{i}") for i in range(3)]
    generations = [
        {
            "question_id": f"p{i}",
            "sample_id": s,
            "response": "```python\nimport time\ntime.sleep(0.5 * %d)\nprint(int(input()) * 2)\n```" % i,
        }
        for i in range(3)
        for s in range(2)
    ]
    (tmp_path / "problems.json").write_text(json.dumps(problems))
    (tmp_path / "generations.json").write_text(json.dumps(generations))
    out = tmp_path / "verdicts.jsonl"
    script = (
        f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); from valley.grader.client import grade_remote; "
        f"grade_remote({server!r}, json.load(open('problems.json')), json.load(open('generations.json')), "
        "'verdicts.jsonl', concurrency=1)"
    )
    client = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    client.kill()
    client.wait()
    first = read_verdicts(out)
    assert 2 <= len(first) < 6 and len(out.read_text().splitlines()) == len(first)
    sent = grade_remote(server, problems, generations, out, concurrency=1)
    assert sent == 6 - len(first)
    lines = out.read_text().splitlines()
    assert len(lines) == 6 == len(read_verdicts(out))
    assert all(row["passed"] for row in read_verdicts(out).values())


# ---- hardening (issue 21): whatever a client sends, one line back and no slot held for ever


def raw_request(url: str, head: str, body: bytes = b"", *, close_write: bool = False, timeout_s: float = 60) -> bytes:
    """Send a hand-made request; returns the status line (b"" when the server closed without one)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout_s) as connection:
        connection.sendall(head.encode() + b"\r\n\r\n" + body)
        if close_write:
            connection.shutdown(socket.SHUT_WR)
        return connection.makefile("rb").readline()


def grading_body(size: int = 0) -> bytes:
    """A valid request, padded with whitespace to `size` bytes."""
    body = json.dumps(
        {
            "problems": [problem_row()],
            "generations": [{"question_id": "double", "sample_id": 0, "response": "```python\nprint(1)\n```"}],
        }
    ).encode()
    return body + b" " * max(0, size - len(body))


def test_a_negative_or_malformed_content_length_is_400_and_bypasses_nothing(server):
    oversized = grading_body(2 * 1024 * 1024)  # the server takes 1 MiB
    for length in ("-1", "abc", "+5", "1e3", ""):
        status = raw_request(
            server, f"POST /grade HTTP/1.1\r\nHost: x\r\nContent-Length: {length}", oversized, close_write=True
        )
        assert b" 400 " in status, (length, status)


def test_undecodable_or_inflating_private_tests_get_one_line_and_no_memory(server):
    import base64
    import pickle
    import zlib

    bomb = [{"input": "1" * (64 << 20), "output": "2", "testtype": "stdin"}]  # 64 MiB of tests
    cases = {
        413: base64.b64encode(zlib.compress(pickle.dumps(json.dumps(bomb)), 9)).decode(),  # ~64 KiB on the wire
        400: base64.b64encode(zlib.compress(b"not a pickle")).decode(),
    }
    for expected, encoded in cases.items():
        row = {**problem_row(), "private_test_cases": encoded}
        body = {"problems": [row], "generations": [{"question_id": "double", "sample_id": 0, "response": "x"}]}
        status, _headers, answer = post(server, json.dumps(body).encode())
        assert status == expected and "private_test_cases" in answer["error"], (status, answer)
        assert "\n" not in answer["error"]
    # a body whose problems or generations have the wrong shape: 400 with the reason, never an empty reply
    for body in (
        {"problems": [{**problem_row(), "private_test_cases": json.dumps({"input": 1})}], "generations": []},
        {"problems": [problem_row()], "generations": [{"question_id": "double", "sample_id": 0, "response": 5}]},
        {"problems": "x", "generations": []},
        [1, 2],
    ):
        status, _headers, answer = post(server, json.dumps(body).encode())
        assert status == 400 and answer["error"] and "\n" not in answer["error"], (body, status, answer)


def test_a_client_that_never_finishes_its_body_is_cut_off_and_frees_its_slot():
    process, url = start_server("--workers", "1", "--max-pending", "1", "--read-timeout-s", "2")
    try:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=60) as stalled:
            stalled.sendall(b'POST /grade HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"problems"')
            cut_off = stalled.makefile("rb").readline()  # at the read deadline: 408
            assert b" 408 " in cut_off, cut_off
        status, _headers, body = post(url, grading_body())  # its slot is free again
        assert status == 200 and body["rows"][0]["verdict"] == "wrong_answer"
    finally:
        process.kill()
        process.wait()


def test_sigterm_drains_within_its_bound_whatever_clients_do(tmp_path):
    scratch = tmp_path / "sandboxes"
    scratch.mkdir()
    scratch.chmod(0o711)
    process, url = start_server("--workers", "1", "--drain-s", "2", env={"VALLEY_GRADER_TMPDIR": str(scratch)})
    long_running = json.dumps(
        {
            "problems": [problem_row()],
            "generations": [{"question_id": "double", "sample_id": 0, "response": SLEEPER}],
            "timeout_s": 20,  # its wall-clock guard stops it after 60 s
        }
    ).encode()
    threading.Thread(target=post, args=(url, long_running), daemon=True).start()
    host, port = url.removeprefix("http://").split(":")
    stalled = socket.create_connection((host, int(port)))
    stalled.sendall(b"POST /grade HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    try:
        health_when(url, lambda _status, body: body["pending"] == 2)  # both admitted: one grading, one stalled
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0  # the drain bound (2 s), not the running program's 60 s
        assert list(scratch.iterdir()) == []  # its sandboxes closed on the way out
    finally:
        stalled.close()
        process.kill()
