"""Fault injection for the e2e suite, the same on the fake and on a real control plane.

* `FlakyTracking`: a real `mlflow server` behind a forwarding proxy at a fixed address. `stop()`
  stops the server and closes the address (connections are refused, as at a stopped server's
  port); `start()` starts it again over the same store. `on(predicate, action)` runs `action` when
  the first request matching `predicate` arrives, before it is forwarded: the request is held, so a
  fault lands at an exact point of a command (the MLflow requests are the one place both control
  planes let a test see a command's progress; the Kubernetes API speaks TLS on a real cluster).
* `ApiProxy`: a TCP proxy in front of the API server (TLS passes through): `cut()` refuses new
  connections and ends the open ones, `restore()` listens again on the same port.
* `audit()`: what is wrong after a scenario: objects no MLflow run owns, shared objects no run
  needs, MLflow runs whose status their Jobs contradict, active runs with nothing in the namespace,
  launches left pending, ended stages whose logs were not recorded.
* `LEDGER`: every fault injected, whether the command facing it survived (an exit status and one
  line naming the cause, never a traceback), and how many leftovers the audit found after the
  repair; the e2e conftest prints the counts at the end of the session.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

#: (method, path, JSON body or None) of an MLflow request
Predicate = Callable[[str, str, dict | None], bool]


@dataclass
class Fault:
    plane: str
    fault: str
    survived: bool
    leftovers: int


#: what valleyctl made (not the kit's own objects, also part-of valley)
VALLEYCTL_MADE = "app.kubernetes.io/managed-by=valleyctl"
#: every fault of this session, in the order injected
LEDGER: list[Fault] = []


def summary() -> list[str]:
    """One line per control plane: faults injected, survived, leftovers."""
    lines = []
    for plane in sorted({f.plane for f in LEDGER}):
        faults = [f for f in LEDGER if f.plane == plane]
        lines.append(
            f"fault injection ({plane}): {len(faults)} injected, {sum(f.survived for f in faults)} survived, "
            f"{sum(f.leftovers for f in faults)} leftovers ({', '.join(f.fault for f in faults)})"
        )
    return lines


class _Hook:
    def __init__(self, predicate: Predicate, action: Callable[[], None], forward: bool) -> None:
        self.predicate, self.action, self.forward = predicate, action, forward
        self.fired = threading.Event()


class FlakyTracking:
    """A real MLflow tracking server that a test can stop and start again under the same URL."""

    def __init__(self, root: Path) -> None:
        from manager.mlflow_ui import free_port

        self.root = root
        self.store = f"sqlite:///{root / 'mlflow.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.upstream: str | None = None
        self.hooks: list[_Hook] = []
        self._server_stack = ExitStack()
        self._proxy: ThreadingHTTPServer | None = None
        self.lock = threading.Lock()

    def start(self) -> "FlakyTracking":
        from manager.mlflow_ui import mlflow_server

        self.upstream = self._server_stack.enter_context(mlflow_server(self.store, workdir=self.root))
        self._proxy = _Proxy(("127.0.0.1", self.port), _handler_for(self))
        threading.Thread(target=self._proxy.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """The server process ends; its address refuses connections."""
        proxy, self._proxy, self.upstream = self._proxy, None, None
        if proxy is not None:
            proxy.shutdown()
            proxy.server_close()
        self._server_stack.close()

    def on(self, predicate: Predicate, action: Callable[[], None], *, forward: bool = True) -> _Hook:
        """Run `action` when the first request matching `predicate` arrives; then forward it, or (`forward`
        False, or the server stopped meanwhile) close its connection unanswered."""
        hook = _Hook(predicate, action, forward)
        with self.lock:
            self.hooks.append(hook)
        return hook

    def clear(self) -> None:
        with self.lock:
            self.hooks.clear()

    def _take(self, method: str, path: str, body: dict | None) -> _Hook | None:
        with self.lock:
            for hook in self.hooks:
                if hook.predicate(method, path, body):
                    self.hooks.remove(hook)
                    return hook
        return None


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() may run inside a request this server is handling


def _handler_for(tracking: FlakyTracking):
    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def relay(self, method: str) -> None:
            raw = self.body()
            try:
                body = json.loads(raw) if raw and "json" in (self.headers.get("Content-Type") or "") else None
            except ValueError:
                body = None
            hook = tracking._take(method, self.path, body)
            if hook is not None:
                hook.fired.set()
                hook.action()
            upstream = tracking.upstream
            if upstream is None or (hook is not None and not hook.forward):  # it gets no answer
                self.close_connection = True
                return
            host, port = upstream.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=120)
            skip = ("host", "connection", "transfer-encoding", "content-length")
            headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
            connection.request(method, self.path, body=raw or None, headers=headers)
            response = connection.getresponse()
            data = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            connection.close()

        def body(self) -> bytes:
            """The request body, sent with a length or in chunks (artifact uploads stream a file)."""
            if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)

        def do_GET(self):
            self.relay("GET")

        def do_POST(self):
            self.relay("POST")

        def do_PUT(self):
            self.relay("PUT")

        def do_PATCH(self):
            self.relay("PATCH")

        def do_DELETE(self):
            self.relay("DELETE")

    return Forward


def mlflow_call(endpoint: str, **fields) -> Predicate:
    """A predicate: a POST to the MLflow REST `endpoint` (e.g. `runs/create`) whose JSON body has `fields`
    (a field may be a callable testing the value)."""

    def matches(method: str, path: str, body: dict | None) -> bool:
        if method != "POST" or not path.split("?")[0].endswith(f"/mlflow/{endpoint}") or body is None:
            return False
        return all(want(body.get(k)) if callable(want) else body.get(k) == want for k, want in fields.items())

    return matches


def tagged(key: str, value: str | None = None) -> Callable[[object], bool]:
    """A body-field test: a list of MLflow tags holding `key` (with `value`, if given)."""
    return lambda tags: any(
        t.get("key") == key and (value is None or t.get("value") == value) for t in tags or [] if isinstance(t, dict)
    )


class ApiProxy:
    """A TCP proxy to the API server whose address a test can cut (refused, open connections ended)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener = self._listen(0)
        self.port = self.listener.getsockname()[1]

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by cut()
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def cut(self) -> None:
        try:  # wakes the accept blocked on it; a close alone leaves it listening until then
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for connection in self.connections:
                try:  # a shutdown wakes the pump blocked on it (a close alone would not), then the peer sees the end
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self.connections.clear()

    def restore(self) -> None:
        self.listener = self._listen(self.port)

    def close(self) -> None:
        self.cut()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def audit(plane, tracking: str) -> list[str]:
    """What is wrong in the plane's namespace and the tracking server's record of it (one line each)."""
    from mlflow.tracking import MlflowClient

    from manager.backends.kube import RUN_KINDS, Kube
    from manager.backends.lifecycle import needs, plan_reconcile
    from manager.tracking import ACTIVE, KILLED
    from valley.vocabulary import (
        KIND_TAG,
        LAUNCH_PENDING,
        LAUNCH_TAG,
        NAMESPACE_TAG,
        RUN_KIND,
        RUN_LABEL,
        RUN_NAME_TAG,
        label,
        logs_tag,
        tag_filter,
    )

    kube = Kube(plane.admin, plane.namespace)
    objects = [(kind, obj) for kind in RUN_KINDS for obj in kube.list(kind, VALLEYCTL_MADE)]
    jobs = [obj for kind, obj in objects if kind == "Job"]
    client = MlflowClient(tracking)
    experiments = [e.experiment_id for e in client.search_experiments() if e.name.startswith("valley-")]
    newest: dict[str, object] = {}
    if experiments:
        for record in client.search_runs(
            experiments,
            tag_filter({KIND_TAG: RUN_KIND, NAMESPACE_TAG: plane.namespace}),
            order_by=["attributes.start_time ASC"],
            max_results=1000,
        ):
            newest[record.data.tags[RUN_NAME_TAG]] = record
    plan = plan_reconcile(jobs)
    needed = {name for job in jobs for name in needs(job)}
    problems = []
    for kind, obj in objects:
        name, run = obj["metadata"]["name"], label(obj, RUN_LABEL)
        if run is None:
            if name.removesuffix("-input") not in needed:
                problems.append(f"orphan shared {kind} {name}: no run's Job needs it")
        elif run not in newest:
            problems.append(f"orphan {kind} {name}: no MLflow run of {run}")
        elif name == f"{run}-mlflow" and (obj.get("data") or {}).get("run_id") != newest[run].info.run_id:
            problems.append(f"{kind} {name} names MLflow run {obj['data'].get('run_id')}, not the run's newest")
    for run, record in newest.items():
        status, tags = record.info.status, record.data.tags
        if tags.get(LAUNCH_TAG) == LAUNCH_PENDING:
            problems.append(f"{run}: recorded by a launch that never completed")
        if run in plan.statuses:
            said = plan.statuses[run][1]
            if status not in (said, KILLED):
                problems.append(f"{run}: MLflow {status}, its Jobs say {said}")
            if status != KILLED:
                problems += [
                    f"{run}: the logs of its ended {stage} stage are not recorded"
                    for name, stage, _ in plan.ended
                    if name == run and logs_tag(stage) not in tags
                ]
        elif status in ACTIVE:
            problems.append(f"{run}: MLflow {status} with nothing of it in namespace {plane.namespace}")
    return problems
