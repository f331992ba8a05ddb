"""A started sandbox and the line protocol with the harness inside it (harness.py's docstring):
load a program, run its tests under the CPU-time limit and the wall-clock guard, end it.

A started sandbox serves every test of a program, and then the next program (pool.py: warm
sandboxes), so its start cost is paid once per many programs, not per test.
Stdlib only: the grader image imports this without typer, rich or pydantic.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

from valley.cores import usable_cores
from valley.grader.cpu import CpuCgroup, tree_usage
from valley.grader.harness import CACHED_INPUT_CHARS, CLOCK_TICKS, POLLS_PER_LIMIT, InputCache
from valley.grader.isolation import HOST_ENV, IsolationUnavailable, resolve_kind
from valley.grader.launch import process_launch, runsc_command, runsc_launch, scratch_root, stdlib_image

START_TIMEOUT_S = 30.0
REPLY_MARGIN_S = 10.0  # the harness enforces per-test timeouts; this only catches a wedged sandbox
# a test may take this many times its CPU limit of wall time, not counting time spent waiting for a CPU
WALL_GUARD = 3.0
BACKSTOP = 10.0  # the harness's own limits, should the grader's watch not come
# where the harness watches the precise CPU time, RLIMIT_CPU (per process, tick-sampled) stays this
# close to the limit, so that a helper process the program forks and never reaps cannot run on unseen
WATCHED_RLIMIT = 1.25
# Tests run at most one per core, whatever the number of workers: a program's CPU time then does
# not depend on how many others are graded beside it, and the wall-clock guard is never reached
# by a program that merely waited for a CPU. Workers beyond the cores overlap everything else
# (sandbox starts, transport, comparison) with running tests.
TEST_SLOTS = threading.BoundedSemaphore(usable_cores())


class SandboxError(RuntimeError):
    """The sandbox itself failed (could not start, died): an infrastructure error, not a verdict."""


class ProgramEndedSandbox(RuntimeError):
    """The sandbox ended while a test ran: the program took its supervisor down."""


class Session:
    """A started sandbox running the harness; it grades programs one after another."""

    def __init__(self, kind: str):
        self.kind = resolve_kind(kind)
        try:
            self.workdir = tempfile.mkdtemp(prefix="valley-grade-", dir=scratch_root())
        except OSError as error:
            raise SandboxError(f"{self.kind} sandbox: no scratch directory under {scratch_root()}: {error}") from error
        self.process: subprocess.Popen | None = None
        self.container_id: str | None = None
        self._stderr_path = os.path.join(self.workdir, "sandbox.stderr")
        self._buffer = bytearray()
        self.start_s = 0.0
        self.programs = 0
        self.inputs = InputCache()  # what the harness holds (keys and sizes only)
        self._cpu_mark: float | None = None  # runsc: the sandbox's CPU seconds after its last test
        self.cgroup: CpuCgroup | None = None
        self.aborted = False  # killed from outside (the grader stopping), not by its program

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def start(self) -> "Session":
        started = time.perf_counter()
        try:  # never a weaker mode
            if self.kind == "runsc":
                argv, setup, self.container_id = runsc_launch(self.workdir)
            else:
                argv, setup = process_launch(self.kind, self.workdir)
        except IsolationUnavailable:
            self.close()
            raise
        if self.kind == "runsc" and (cgroup := CpuCgroup.make(f"valley-{os.getpid()}-{uuid.uuid4().hex[:12]}")):
            self.cgroup = cgroup  # the sandbox's processes join it before they exist, and count after they are gone
            argv = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup.procs), *argv]
        try:
            # stderr to a file: nobody reads a pipe while tests run, and a full one would block
            with open(self._stderr_path, "wb") as stderr:
                self.process = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    env=HOST_ENV,
                    cwd=self.workdir,
                    start_new_session=True,
                )
        except OSError as error:
            self.close()
            raise SandboxError(f"{self.kind} sandbox could not start: {error}") from error
        image = stdlib_image()
        self._send({**setup, "stdlib_bytes": len(image)})
        self._send_bytes(image)
        if self._receive(started + START_TIMEOUT_S) is None:
            detail = self._stderr_tail()
            self.close()
            raise SandboxError(f"{self.kind} sandbox did not start: {detail}")
        self.start_s = time.perf_counter() - started
        return self

    def load(self, code: str, mode: str, fn_name: str | None, limits: dict | None = None) -> str | None:
        """Hand the sandbox the next program; returns its compile error or None."""
        self.programs += 1
        self._cpu_mark = None
        self._send({"code": code, "mode": mode, "fn_name": fn_name, "limits": limits or {}})
        return self._expect(START_TIMEOUT_S).get("compile_error")

    def run(self, test_input: str, timeout_s: float) -> dict:
        """Run one test under a CPU-time limit of `timeout_s`; the harness's raw result (status,
        stdout or value, `time_s` wall, `cpu_s`, memory, `stages`). A program that used more CPU
        than its limit is a timeout however it ended, as on online judges. A program that sleeps
        or blocks is stopped by a wall-clock guard of WALL_GUARD times the limit, which does not
        count the time the sandbox waited for a host CPU (the kernel's run-queue wait), so
        neither the number of workers nor other load on the machine changes a verdict.

        gVisor charges a task for the time it waits for a host CPU, so under runsc the CPU time
        is read from the host: the sandbox's processes' CPU during the test, which also counts
        the sandbox's own work for it (the fork, the input and output files). Elsewhere (process,
        unsafe-local, in-gvisor) the harness's zygote reads the precise CPU time of every
        process the test started (live ones below it, and those it reaped) and stops the test
        itself: the kernel enforces RLIMIT_CPU on a tick-sampled figure that runs ahead of it on
        contended CPUs (it stopped programs at 0.88 s of a 1 s limit), and per process, so
        RLIMIT_CPU is only a backstop there. In gVisor (in-gvisor) that is gVisor's clock."""
        host_clock = self.kind == "runsc"
        backstop = BACKSTOP * timeout_s
        limits = {"cpu_limit_s": backstop, "wall_limit_s": backstop}
        if not host_clock:
            limits.update(cpu_limit_s=WATCHED_RLIMIT * timeout_s + 0.5, watch_cpu_s=timeout_s)
        waited = time.perf_counter()
        with TEST_SLOTS:
            started = time.perf_counter()
            message = self._test_message(test_input, limits)
            # the sandbox is idle between two tests of a program: the last reading still holds
            cpu_before = self._cpu_mark if self._cpu_mark is not None else self._host_cpu_s() if host_clock else 0.0
            # tests shorter than a poll never read /proc. The guard counts from the first poll: the
            # run-queue waits before it (the test's processes being started on a busy machine) are
            # in its baseline, so the time before it must not count either, or a wait would
            first_poll: list[tuple[float, int]] = []

            def over_limit() -> str | None:
                _ticks, queued_ns = tree_usage(self.process.pid)
                if host_clock and self._host_cpu_s() - cpu_before > timeout_s:
                    return "cpu_limit"
                first_poll[:] = first_poll or [(time.perf_counter(), queued_ns)]
                polled_at, queued_then = first_poll[0]
                if time.perf_counter() - polled_at - (queued_ns - queued_then) / 1e9 > WALL_GUARD * timeout_s:
                    return "wall_limit"
                return None

            self._send_bytes(message)
            sent = time.perf_counter()
            reply = self._receive(sent + backstop + REPLY_MARGIN_S, (over_limit, timeout_s / POLLS_PER_LIMIT))
            if reply is not None and reply.get("status") == "need_input":
                self._send_bytes(
                    json.dumps({"input": test_input, "input_key": _input_key(test_input), **limits}).encode() + b"\n"
                )
                reply = self._receive(
                    time.perf_counter() + backstop + REPLY_MARGIN_S, (over_limit, timeout_s / POLLS_PER_LIMIT)
                )
            if reply is not None and host_clock:
                self._cpu_mark = self._host_cpu_s()
                reply["cpu_s"] = round(self._cpu_mark - cpu_before, 4)
            finished = time.perf_counter()
        if reply is None:
            if self.aborted:
                raise SandboxError(f"{self.kind} sandbox closed while grading: the grader is stopping")
            raise ProgramEndedSandbox(self._stderr_tail())
        if reply.get("status") == "harness_error":
            raise SandboxError(f"{self.kind} harness failed: {reply['detail']}")
        if (reply.get("cpu_s") or 0) > timeout_s:
            reply.update(status="timeout", limit="cpu_limit")
        harness = reply.pop("stages")
        inside = harness["parse_s"] + harness["write_s"] + harness["fork_s"] + reply["time_s"] + harness["collect_s"]
        reply["stages"] = {
            "slot_wait_s": started - waited,
            "input_s": (sent - started) + harness["parse_s"] + harness["write_s"],
            "fork_s": harness["fork_s"],
            "output_s": harness["collect_s"] + max(0.0, (finished - sent) - inside),
        }
        return reply

    def _host_cpu_s(self) -> float:
        """The sandbox's CPU seconds on the host: its cgroup's (exact, and it keeps the time of
        processes gone, such as a test's exited gVisor stub), else its live process tree's."""
        if self.cgroup is not None:
            return self.cgroup.cpu_s()
        return tree_usage(self.process.pid)[0] / CLOCK_TICKS

    def _test_message(self, test_input: str, limits: dict) -> bytes:
        """A large input the harness already holds goes by its key alone."""
        message = {"input": test_input, **limits}
        if len(test_input) >= CACHED_INPUT_CHARS:
            key = _input_key(test_input)
            if self.inputs.get(key):
                del message["input"]
            else:
                self.inputs.put(key, True, len(test_input))
            message["input_key"] = key
        return json.dumps(message).encode() + b"\n"

    def end_program(self) -> None:
        """Kill what the program left behind and empty its directories, ready for the next."""
        self._send({"end": True})
        self._expect(START_TIMEOUT_S)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _expect(self, timeout_s: float) -> dict:
        reply = self._receive(time.perf_counter() + timeout_s)
        if reply is None or reply.get("status") == "harness_error":
            raise SandboxError(f"{self.kind} harness failed: {(reply or {}).get('detail') or self._stderr_tail()}")
        return reply

    def close(self) -> None:
        if self.process is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._kill()
            self.process.stdout.close()
            self.process = None
        if self.container_id:
            runsc_command(self.workdir, "delete", "--force", self.container_id)
            self.container_id = None
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def abort(self) -> None:
        """Kill the sandbox from another thread: the test it runs ends as an infrastructure error."""
        self.aborted = True
        process = self.process
        if process is not None:
            if self.container_id:
                runsc_command(self.workdir, "kill", self.container_id, "KILL")
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _kill(self) -> None:
        if self.process.poll() is None and self.container_id:
            runsc_command(self.workdir, "kill", self.container_id, "KILL")
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()

    # -- the line protocol

    def _send(self, message: dict) -> None:
        self._send_bytes(json.dumps(message).encode() + b"\n")

    def _send_bytes(self, line: bytes) -> None:
        try:
            self.process.stdin.write(line)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the reply read reports the dead sandbox

    def _receive(self, deadline: float, watch: tuple | None = None) -> dict | None:
        """The next reply: its line, and the program's output and stderr tail it announces,
        which follow it as raw bytes (`stdout`, `value_json`, `stderr`: text, decoded here).
        `watch` = (over_limit, poll_s): every poll_s, tell the harness to stop the test once
        over_limit() names the limit passed."""
        line = self._read_until(lambda: self._buffer.find(b"\n"), deadline, watch)
        if line is None:
            return None
        try:
            reply = json.loads(line[:-1])
            sizes = [int(reply.pop("output_bytes", 0) or 0), int(reply.pop("stderr_bytes", 0) or 0)]
        except (json.JSONDecodeError, TypeError, ValueError, AttributeError):
            return None
        if "output" not in reply:
            return reply
        data = self._read_exact(sum(sizes), deadline)
        if data is None:
            return None
        channel = reply.pop("output")
        if channel in ("stdout", "value"):  # decoded from the buffer itself: the output is held twice at most
            reply["stdout" if channel == "stdout" else "value_json"] = str(data[: sizes[0]], "utf-8", "replace")
        reply["stderr"] = str(data[sizes[0] :], "utf-8", "replace")
        return reply

    def _read_exact(self, size: int, deadline: float) -> memoryview | None:
        """The next `size` bytes from the harness, read into one buffer of that size."""
        data = bytearray(size)
        view = memoryview(data)
        taken = min(size, len(self._buffer))
        view[:taken] = self._buffer[:taken]
        del self._buffer[:taken]
        fd = self.process.stdout.fileno()
        while taken < size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                self._kill()
                return None
            if select.select([fd], [], [], remaining)[0]:
                got = os.readv(fd, [view[taken:]])
                if not got:
                    return None
                taken += got
        return view

    def _read_until(self, end_of, deadline: float, watch: tuple | None = None) -> bytes | None:
        """The buffered bytes up to and including index end_of() (-1: not there yet), read from
        the harness until then; None when it ended or the deadline passed."""
        fd = self.process.stdout.fileno()
        while (end := end_of()) < 0:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                self._kill()
                return None
            if watch is not None:
                remaining = min(remaining, watch[1])
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready and watch is not None and (limit := watch[0]()):
                self._send({"stop": limit})
                watch = None
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    return None
                self._buffer += chunk
        data = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return data

    def _stderr_tail(self) -> str:
        if self.process.poll() is None:
            self._kill()
        try:
            with open(self._stderr_path, "rb") as handle:
                handle.seek(max(0, os.path.getsize(self._stderr_path) - 1000))
                return handle.read().decode(errors="replace").strip()
        except OSError:
            return ""


def _input_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", errors="surrogatepass"), digest_size=16).hexdigest()
