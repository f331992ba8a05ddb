"""The grader sidecar: a stdlib HTTP server in front of `grade`.

    GET  /healthz -> 200 {"ok": true, "sandbox": ..., "isolated": ..., "workers": ..., "pending": ...}
                     (503 while draining; "isolated" is false only for --sandbox unsafe-local)
    POST /grade   {"problems": [LCB rows | Problem dicts], "generations": [{"question_id",
                   "sample_id", "response"}], "timeout_s"?: float, "early_stop"?: bool}
                  -> 200 {"rows": [verdict rows, in request order]}

Whatever a client sends, it gets one JSON line back and holds nothing for ever: a body over the
size limit, or private tests that inflate past it, get 413; a missing, negative or malformed
Content-Length, or a body of the wrong shape, 400 with the reason; a request not read within
the read deadline, 408 (or the connection closed); anything unexpected, 500 with one line. When
`max_pending` requests are already admitted the server answers 429 with Retry-After instead of
queueing without bound. After SIGTERM it drains: 503 to new requests, running ones get up to
`drain_s` to finish, then its sandboxes are closed and it exits; a request cut short that way
gets 503 (retry elsewhere), never rows for programs it did not finish grading.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from valley.grader.grading import default_workers, grade, problem_from_row
from valley.grader.isolation import UNSAFE, require_isolation
from valley.grader.lcb import PrivateTestsTooLarge
from valley.grader.pool import POOL

RETRY_AFTER_S = 1
LINGER_BYTES = 16 << 20
CONTENT_LENGTH = re.compile(r"[0-9]{1,15}")


class GraderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address,
        *,
        sandbox: str,
        workers: int | None,
        max_pending: int,
        max_request_mb: int,
        read_timeout_s: float,
        drain_s: float,
    ):
        self.sandbox = require_isolation(sandbox)  # before binding: no isolation, no server
        super().__init__(address, GradeHandler)
        self.workers = workers or default_workers()
        self.pool = ThreadPoolExecutor(self.workers)
        self.max_request_bytes = max_request_mb * 1024 * 1024
        self.read_timeout_s, self.drain_s = read_timeout_s, drain_s
        self.slots = threading.BoundedSemaphore(max_pending)
        self.max_pending = max_pending
        self.pending = 0
        #: admitted requests whose answer is not written yet (drain waits for them too)
        self.answering = 0
        self.lock = threading.Lock()
        self.all_answered = threading.Condition(self.lock)
        self.draining = threading.Event()
        self.stopped = threading.Event()  # past the drain bound: what still runs is abandoned

    def try_admit(self) -> bool:
        if not self.slots.acquire(blocking=False):
            return False
        with self.lock:
            self.pending += 1
            self.answering += 1
        return True

    def release(self) -> None:
        """The request's work is done: its slot is free (its answer may still be on the way)."""
        with self.lock:
            self.pending -= 1
        self.slots.release()

    def answered(self) -> None:
        with self.lock:
            self.answering -= 1
            self.all_answered.notify_all()

    def parse_request(self, body) -> tuple[dict, list[dict], dict]:
        """(problems by id, generations, options) from a request body; ValueError names what is wrong."""
        if not isinstance(body, dict) or not isinstance(body.get("problems"), list):
            raise ValueError('the body is {"problems": [...], "generations": [...]}')
        if not isinstance(body.get("generations"), list):
            raise ValueError('the body is {"problems": [...], "generations": [...]}')
        problems = {}
        for row in body["problems"]:
            if not isinstance(row, dict):
                raise ValueError("problems: each problem is an object")
            problem = problem_from_row(row, max_test_bytes=self.max_request_bytes)
            problems[problem.question_id] = problem
        for index, generation in enumerate(body["generations"]):
            if not isinstance(generation, dict) or not isinstance(generation.get("response"), str):
                raise ValueError(f"generations[{index}]: an object with a string response")
            if str(generation.get("question_id")) not in problems:
                raise ValueError(
                    f"generation {generation.get('question_id')}/{generation.get('sample_id')}: its problem is not in "
                    "the request"
                )
        options = {"timeout_s": body.get("timeout_s"), "early_stop": body.get("early_stop", True)}
        if options["timeout_s"] is not None and not isinstance(options["timeout_s"], (int, float)):
            raise ValueError("timeout_s: a number of seconds")
        return problems, body["generations"], options

    def grade_request(self, problems: dict, generations: list[dict], options: dict) -> list[dict]:
        def one(generation: dict) -> dict:
            problem = problems[str(generation["question_id"])]
            verdict = grade(problem, generation["response"], sandbox=self.sandbox, **options)
            return {"question_id": problem.question_id, "sample_id": generation.get("sample_id"), **verdict.to_dict()}

        return list(self.pool.map(one, generations))

    def drain_and_stop(self) -> None:
        """503 to new requests; the running ones get up to drain_s, then the sandboxes close."""
        self.draining.set()
        deadline = time.monotonic() + self.drain_s
        for _ in range(self.max_pending):  # every slot back means nothing is running
            if not self.slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                break
        with self.lock:  # and every answer written: slots are freed just before answering
            self.all_answered.wait_for(lambda: self.answering == 0, timeout=max(0.0, deadline - time.monotonic()))
        self.stopped.set()
        self.shutdown()


class GradeHandler(BaseHTTPRequestHandler):
    server: GraderServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        sys.stderr.write(f"grader {self.address_string()} {format % args}\n")

    def handle_one_request(self) -> None:
        """Each request must be read whole within the read deadline: past it, reading stops
        (the headers' reader sees the end, the body's reader answers 408)."""
        self.reading, self.cut_off = True, False
        timer = threading.Timer(self.server.read_timeout_s, self._stop_reading)
        timer.daemon = True
        timer.start()
        try:
            super().handle_one_request()
        finally:
            timer.cancel()

    def _stop_reading(self) -> None:
        if self.reading:
            self.cut_off = True
            try:
                self.connection.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def do_GET(self) -> None:
        self.reading = False
        if self.path != "/healthz":
            return self._reply(404, {"error": "not found; use GET /healthz or POST /grade"})
        server = self.server
        status = 503 if server.draining.is_set() else 200
        self._reply(
            status,
            {
                "ok": status == 200,
                "sandbox": server.sandbox,
                "isolated": server.sandbox != UNSAFE,
                "workers": server.workers,
                "pending": server.pending,
            },
        )

    def do_POST(self) -> None:
        server = self.server
        if self.path != "/grade":
            return self._refuse(404, "not found; use POST /grade")
        if server.draining.is_set():
            return self._refuse(503, "draining", retry=True)
        length = self.headers.get("Content-Length", "")
        if not CONTENT_LENGTH.fullmatch(length.strip()):
            return self._refuse(400, f"Content-Length {length[:20]!r}: a non-negative integer is required")
        length = int(length)
        if length > server.max_request_bytes:
            return self._refuse(
                413,
                f"request body {length} bytes is over the {server.max_request_bytes}-byte limit; send fewer "
                "generations per request",
            )
        if not server.try_admit():
            self._read_body(length, keep=False)  # read (within the deadline), so the client sees the answer
            return self._refuse(429, f"{server.max_pending} requests already pending", retry=True)
        try:
            answer = self._grade(length)
        except Exception as error:  # one line, never an empty reply
            answer = (500, f"grader error: {_line(error)}", False)
        finally:
            # before answering: a client that sends its next request as soon as it reads this answer
            # must find the slot free (released after the answer, it met a 429 under load)
            server.release()
        status, body, retry = answer
        try:
            if status in (200, 400):
                self._reply(status, body if status == 200 else {"error": body})
            else:
                self._refuse(status, body, retry=retry)
        finally:
            server.answered()

    def _grade(self, length: int) -> tuple[int, object, bool]:
        """(status, rows or the error line, whether to retry) for an admitted request."""
        server = self.server
        data = self._read_body(length)
        if data is None:
            return 408, f"the request was not read within {server.read_timeout_s:g} s", False
        try:
            problems, generations, options = server.parse_request(json.loads(data))
        except PrivateTestsTooLarge as error:
            return 413, str(error), False
        except (ValueError, KeyError, TypeError) as error:
            return 400, _line(error), False
        rows = server.grade_request(problems, generations, options)
        if server.stopped.is_set():  # cut short: some rows may be for programs stopped midway
            return 503, "the grader stopped before this request finished; retry", True
        return 200, {"rows": rows}, False

    def _read_body(self, length: int, keep: bool = True) -> bytes | None:
        """The whole body (b"" unless `keep`), or None when the read deadline cut it short."""
        chunks, left = [], length
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                return None
            if keep:
                chunks.append(chunk)
            left -= len(chunk)
        self.reading = False
        return b"".join(chunks)

    def _refuse(self, status: int, error: str, retry: bool = False) -> None:
        """Answer and close. A body still unread is drained a little (up to LINGER_BYTES, within the
        read deadline) after the answer: closing on unread data would reset the connection and
        could lose the answer before the client reads it."""
        self.close_connection = True
        self._reply(status, {"error": error}, retry)
        if not self.reading:
            return
        try:
            self.connection.shutdown(socket.SHUT_WR)
            drained = 0
            while drained < LINGER_BYTES and (chunk := self.rfile.read1(1 << 16)):
                drained += len(chunk)
        except OSError:
            pass

    def _reply(self, status: int, payload: dict, retry: bool = False) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if retry:
                self.send_header("Retry-After", str(RETRY_AFTER_S))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client went away


def _line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".replace("\n", " ")[:500]


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    sandbox: str = "auto",
    workers: int | None = None,
    max_pending: int = 8,
    max_request_mb: int = 256,
    read_timeout_s: float = 60.0,
    drain_s: float = 25.0,
) -> None:
    server = GraderServer(
        (host, port),
        sandbox=sandbox,
        workers=workers,
        max_pending=max_pending,
        max_request_mb=max_request_mb,
        read_timeout_s=read_timeout_s,
        drain_s=drain_s,
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.drain_and_stop, daemon=True).start())
    print(
        f"grader serving on http://{host}:{server.server_address[1]} (sandbox {server.sandbox}, {server.workers} "
        "workers)",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        POOL.close_all(abort=True)  # whatever still runs ends now: its request answers 503
        server.pool.shutdown(wait=True, cancel_futures=True)
        server.server_close()
