"""The grader sidecar: a stdlib HTTP server in front of `grade`.

    GET  /healthz -> 200 {"ok": true, "sandbox": ..., "isolated": ..., "workers": ..., "pending": ...}
                     (503 while draining; "isolated" is false only for --sandbox unsafe-local)
    POST /grade   {"problems": [LCB rows | Problem dicts], "generations": [{"question_id",
                   "sample_id", "response"}], "timeout_s"?: float, "early_stop"?: bool}
                  -> 200 {"rows": [verdict rows, in request order]}

Backpressure: a body over the size limit gets 413; when `max_pending` requests are already
queued or running the server answers 429 with Retry-After instead of queueing without bound;
after SIGTERM it drains (503 to new requests, running ones finish) and exits.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from valley.grader.grading import default_workers, grade, problem_from_row
from valley.grader.isolation import UNSAFE, require_isolation

RETRY_AFTER_S = 1


class GraderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, *, sandbox: str, workers: int | None, max_pending: int, max_request_mb: int):
        self.sandbox = require_isolation(sandbox)  # before binding: no isolation, no server
        super().__init__(address, GradeHandler)
        self.workers = workers or default_workers()
        self.pool = ThreadPoolExecutor(self.workers)
        self.max_request_bytes = max_request_mb * 1024 * 1024
        self.slots = threading.BoundedSemaphore(max_pending)
        self.max_pending = max_pending
        self.pending = 0
        self.lock = threading.Lock()
        self.draining = threading.Event()

    def try_admit(self) -> bool:
        if not self.slots.acquire(blocking=False):
            return False
        with self.lock:
            self.pending += 1
        return True

    def release(self) -> None:
        with self.lock:
            self.pending -= 1
        self.slots.release()

    def grade_request(self, body: dict) -> list[dict]:
        problems = {p.question_id: p for p in map(problem_from_row, body["problems"])}
        options = {
            "sandbox": self.sandbox,
            "timeout_s": body.get("timeout_s"),
            "early_stop": body.get("early_stop", True),
        }

        def one(generation: dict) -> dict:
            problem = problems[str(generation["question_id"])]
            verdict = grade(problem, generation["response"], **options)
            return {"question_id": problem.question_id, "sample_id": generation["sample_id"], **verdict.to_dict()}

        for generation in body["generations"]:
            if str(generation["question_id"]) not in problems:
                raise ValueError(
                    f"generation {generation['question_id']}/{generation.get('sample_id')}: its problem is not in "
                    "the request"
                )
        return list(self.pool.map(one, body["generations"]))

    def drain_and_stop(self) -> None:
        self.draining.set()
        for _ in range(self.max_pending):  # every slot back means nothing is running
            self.slots.acquire()
        self.shutdown()


class GradeHandler(BaseHTTPRequestHandler):
    server: GraderServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        sys.stderr.write(f"grader {self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
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
            return self._reply(404, {"error": "not found; use POST /grade"})
        if server.draining.is_set():
            return self._reply(503, {"error": "draining"}, retry=True)
        length = int(self.headers.get("Content-Length") or 0)
        if length > server.max_request_bytes:
            self.close_connection = True
            return self._reply(
                413,
                {
                    "error": f"request body {length} bytes is over the {server.max_request_bytes}-byte limit; "
                    "send fewer generations per request"
                },
            )
        if not server.try_admit():
            self._discard(length)
            return self._reply(429, {"error": f"{server.max_pending} requests already pending"}, retry=True)
        try:
            try:
                body = json.loads(self.rfile.read(length))
                rows = server.grade_request(body)
            except (ValueError, KeyError, TypeError) as error:
                return self._reply(400, {"error": f"{type(error).__name__}: {error}"})
            self._reply(200, {"rows": rows})
        finally:
            server.release()

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                return
            length -= len(chunk)

    def _reply(self, status: int, payload: dict, retry: bool = False) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry:
            self.send_header("Retry-After", str(RETRY_AFTER_S))
        self.end_headers()
        self.wfile.write(data)


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    sandbox: str = "auto",
    workers: int | None = None,
    max_pending: int = 8,
    max_request_mb: int = 256,
) -> None:
    server = GraderServer(
        (host, port), sandbox=sandbox, workers=workers, max_pending=max_pending, max_request_mb=max_request_mb
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
        server.pool.shutdown(wait=True)
        server.server_close()
