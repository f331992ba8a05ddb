"""Warm sandboxes: a pool that hands out started sandboxes, program after program, and closes
them at interpreter exit."""

from __future__ import annotations

import atexit
import contextlib
import threading

from valley.cores import usable_cores
from valley.grader.isolation import resolve_kind, shares_uid
from valley.grader.session import SandboxError, Session

SANDBOXES_PER_CORE = 2  # one running a test, one loading, comparing or cleaning up meanwhile


class SessionPool:
    """Warm sandboxes, reused program after program: the start cost is paid once per
    `max_programs` programs instead of once per program. A sandbox that a program broke
    (killed its harness, wedged it) is closed, never reused. At most SANDBOXES_PER_CORE
    sandboxes per core are in use at once: tests run one per core (TEST_SLOTS), so more would
    only start sandboxes (a runsc start costs about a CPU-second) to wait for a core; workers
    beyond that wait here instead.

    Without namespaces a non-root grader's programs all run as its own uid, where nothing keeps
    one program's files and processes from another's: such sandboxes grade one program at a
    time (`shares_uid`)."""

    def __init__(self, max_programs: int = 64, max_in_use: int = SANDBOXES_PER_CORE * usable_cores()):
        self.max_programs = max_programs
        self._idle: dict[str, list[Session]] = {}
        self._lock = threading.Lock()
        self._one_at_a_time = threading.Lock()
        self._in_use = threading.BoundedSemaphore(max_in_use)
        self._busy: set[Session] = set()
        self._closed = False  # after close_all(abort=True): the process is stopping
        atexit.register(self.close_all)

    @contextlib.contextmanager
    def session(self, kind: str):
        kind = resolve_kind(kind)
        with self._in_use, self._one_at_a_time if shares_uid(kind) else contextlib.nullcontext():
            with self._session(kind) as taken:
                yield taken

    @contextlib.contextmanager
    def _session(self, kind: str):
        with self._lock:
            if self._closed:
                raise SandboxError("the grader is stopping")
            session = self._idle.get(kind, []).pop() if self._idle.get(kind) else None
        fresh = session is None
        if fresh:
            session = Session(kind).start()
        with self._lock:
            self._busy.add(session)
        healthy = False
        try:
            yield session, fresh
            if session.alive and session.programs < self.max_programs:
                try:
                    session.end_program()
                    healthy = True
                except SandboxError:
                    pass  # the program's verdict stands; only this sandbox is not reused
        finally:
            with self._lock:
                self._busy.discard(session)
                healthy = healthy and not self._closed
                if healthy:
                    self._idle.setdefault(kind, []).append(session)
            if not healthy:
                session.close()

    def close_all(self, abort: bool = False) -> None:
        """Close the idle sandboxes; with `abort`, also kill those in use (their tests end as
        infra errors) and start no more: the process is stopping."""
        with self._lock:
            sessions = [s for idle in self._idle.values() for s in idle]
            self._idle.clear()
            busy = list(self._busy) if abort else []
            self._closed = self._closed or abort
        for session in sessions:
            session.close()
        for session in busy:
            session.abort()


POOL = SessionPool()
