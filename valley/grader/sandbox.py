"""Sandboxes that run the harness (valley/grader/harness.py) for one program and all its tests.

* `runsc`: a gVisor container from an OCI bundle built per sandbox: read-only root holding only
  the harness, read-only binds of /usr and the interpreter's prefix, tmpfs /scratch and /tmp
  (writes never reach the host), no network (`--network=none`), no host environment.
* `process`: the harness as a confined host process: its own PID, network and mount namespaces
  when `unshare` allows (as root, or through a user namespace), tmpfs over scratch and every
  world-writable or secret-holding directory, a scrubbed environment, its own session; the
  harness adds rlimits, an unprivileged uid and a fresh working directory per test.
* `in-gvisor`: the grader itself runs under gVisor (a pod with RuntimeClass gvisor, where
  `unshare` is refused): programs run as confined processes without namespaces, gVisor is the
  wall around all of them. Refused unless the kernel answering is gVisor's.
* `unsafe-local`: the process sandbox without namespaces, on purpose (a laptop or CI container
  that refuses `unshare`). Every verdict row and /healthz name it; cluster runs refuse it.
* `auto`: runsc when the binary is on PATH, else process.

Fail closed: `require_isolation` (called before any grading) refuses a kind whose isolation
is unavailable here, with one line naming the fix; nothing falls back to a weaker mode.

A started sandbox serves every test of a program, and then the next program (`SessionPool`:
warm sandboxes), so its start cost is paid once per many programs, not per test.
Stdlib only: the grader image imports this without typer, rich or pydantic.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from valley.grader.harness import (
    CACHED_INPUT_CHARS,
    CLOCK_TICKS,
    DEFAULT_LIMITS,
    POLLS_PER_LIMIT,
    InputCache,
    cpu_ticks,
    proc_stats,
    value_reply,
)

HARNESS = Path(__file__).with_name("harness.py")
SANDBOX_KINDS = ("auto", "runsc", "process", "in-gvisor", "unsafe-local")
UNSAFE = "unsafe-local"
NAMESPACELESS = ("in-gvisor", UNSAFE)
HOST_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
START_TIMEOUT_S = 30.0
REPLY_MARGIN_S = 10.0  # the harness enforces per-test timeouts; this only catches a wedged sandbox
WALL_GUARD = (
    3.0  # a test may take this many times its CPU limit of wall time, not counting time spent waiting for a CPU
)
BACKSTOP = 10.0  # the harness's own limits, should the grader's watch not come
# where the harness watches the precise CPU time, RLIMIT_CPU (per process, tick-sampled) stays this
# close to the limit, so that a helper process the program forks and never reaps cannot run on unseen
WATCHED_RLIMIT = 1.25
UNPRIVILEGED_UID = 65534
CAPABILITIES = ["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_FOWNER"]


class SandboxError(RuntimeError):
    """The sandbox itself failed (could not start, died): an infrastructure error, not a verdict."""


class IsolationUnavailable(RuntimeError):
    """The isolation asked for cannot be had here: the grader refuses to grade at all."""


class ProgramEndedSandbox(RuntimeError):
    """The sandbox ended while a test ran: the program took its supervisor down."""


def resolve_kind(kind: str) -> str:
    if kind not in SANDBOX_KINDS:
        raise ValueError(f"sandbox: unknown kind {kind!r}; use one of {', '.join(SANDBOX_KINDS)}")
    if kind == "auto":
        return "runsc" if shutil.which("runsc") else "process"
    return kind


def usable_cores() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota (a pod's limit)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for path, parse in (
        ("/sys/fs/cgroup/cpu.max", lambda t: t.split()),
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", lambda t: [t.strip(), "100000"]),
    ):
        try:
            with open(path, encoding="ascii") as handle:
                quota, period = parse(handle.read())
            if quota not in ("max", "-1"):
                cores = min(cores, -(-int(quota) // int(period)))
        except (OSError, ValueError):
            continue
    return max(1, cores)


# Tests run at most one per core, whatever the number of workers: a program's CPU time then does
# not depend on how many others are graded beside it, and the wall-clock guard is never reached
# by a program that merely waited for a CPU. Workers beyond the cores overlap everything else
# (sandbox starts, transport, comparison) with running tests.
TEST_SLOTS = threading.BoundedSemaphore(usable_cores())
SANDBOXES_PER_CORE = 2  # one running a test, one loading, comparing or cleaning up meanwhile


def scratch_root() -> str:
    return os.environ.get("VALLEY_GRADER_TMPDIR") or tempfile.gettempdir()


def interpreter() -> str:
    """The base interpreter (not a venv's): it runs with -I and needs only the stdlib."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def namespace_prefix() -> tuple[str, ...]:
    """The `unshare` invocation that works here, or () when none does."""
    return _namespace_probe()[0]


@functools.lru_cache(maxsize=None)
def _namespace_probe() -> tuple[tuple[str, ...], str]:
    """(the working `unshare` invocation or (), why none works). `VALLEY_GRADER_NAMESPACES=0`
    makes it fail as a pod whose seccomp profile forbids `unshare` does (tests use it)."""
    unshare = shutil.which("unshare")
    if not unshare:
        return (), "no unshare binary on PATH"
    if os.environ.get("VALLEY_GRADER_NAMESPACES") == "0":
        return (), "VALLEY_GRADER_NAMESPACES=0"
    common = ("--pid", "--net", "--mount", "--fork", "--kill-child", "--mount-proc")
    candidates = [(unshare, *common)] if os.geteuid() == 0 else []
    candidates.append((unshare, "--user", "--map-root-user", *common))
    reason = ""
    for candidate in candidates:
        try:
            probe = subprocess.run([*candidate, "true"], capture_output=True, timeout=10, env=HOST_ENV)
        except (OSError, subprocess.TimeoutExpired) as error:
            reason = str(error)
            continue
        if probe.returncode == 0:
            return candidate, ""
        reason = probe.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {probe.returncode}"]
        reason = reason[0]
    return (), reason


def under_gvisor() -> bool:
    """Whether the kernel answering is gVisor's: its log starts "Starting gVisor..." (a Linux
    kernel's log is readable only with CAP_SYSLOG, and never says that)."""
    import ctypes

    buffer = ctypes.create_string_buffer(4096)
    size = ctypes.CDLL(None, use_errno=True).klogctl(3, buffer, len(buffer))  # SYSLOG_ACTION_READ_ALL
    return size > 0 and b"Starting gVisor" in buffer.raw[:size]


def require_isolation(kind: str) -> str:
    """The resolved kind, once its isolation is known to work here; else IsolationUnavailable
    with one line naming the fix. Called before any program is graded."""
    kind = resolve_kind(kind)
    if kind == "runsc" and not shutil.which("runsc"):
        raise IsolationUnavailable(
            "runsc sandbox: the runsc binary is not on PATH; install it (apt-get install -y runsc) or pass --sandbox "
            "process"
        )
    if kind == "process" and not namespace_prefix():
        raise IsolationUnavailable(
            f"process sandbox: unshare refused ({_namespace_probe()[1]}); run the grader as root or where user "
            "namespaces "
            "are allowed, install runsc, or pass --sandbox unsafe-local to grade without namespaces (never on a "
            "cluster)"
        )
    if kind == "in-gvisor" and not under_gvisor():
        raise IsolationUnavailable(
            "in-gvisor sandbox: this grader is not running under gVisor; use it only in a pod with "
            "runtimeClassName gvisor, or pass --sandbox process"
        )
    return kind


def on_cluster() -> bool:
    return "KUBERNETES_SERVICE_HOST" in os.environ


def refuse_unsafe_on_cluster(kind: str, what: str) -> None:
    if kind == UNSAFE and on_cluster():
        raise IsolationUnavailable(
            f"{what}: sandbox {UNSAFE} is refused on a cluster; grade through the gVisor grader "
            "(--grader-url) or with --sandbox runsc/process"
        )


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

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def start(self) -> "Session":
        started = time.perf_counter()
        try:
            argv, setup = self._runsc_argv() if self.kind == "runsc" else self._process_argv()  # never a weaker mode
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
        self._send(setup)
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
        the sandbox's own work for it (the fork, the input and output files). On the host kernel
        (process, unsafe-local) the harness reads its child's precise CPU time itself: the kernel
        enforces RLIMIT_CPU on a tick-sampled figure that runs ahead of it on contended CPUs (it
        stopped programs at 0.88 s of a 1 s limit), so RLIMIT_CPU is only a backstop there. In
        gVisor (in-gvisor) only gVisor's clock exists, and RLIMIT_CPU on it judges."""
        host_clock = self.kind == "runsc"
        harness_watch = self.kind not in ("runsc", "in-gvisor")
        backstop = BACKSTOP * timeout_s
        limits = {"cpu_limit_s": timeout_s, "wall_limit_s": backstop}  # in-gvisor: RLIMIT_CPU judges
        if host_clock:
            limits["cpu_limit_s"] = backstop
        elif harness_watch:
            limits.update(cpu_limit_s=WATCHED_RLIMIT * timeout_s + 0.5, watch_cpu_s=timeout_s)
        waited = time.perf_counter()
        with TEST_SLOTS:
            started = time.perf_counter()
            message = self._test_message(test_input, limits)
            # the sandbox is idle between two tests of a program: the last reading still holds
            cpu_before = self._cpu_mark if self._cpu_mark is not None else self._host_cpu_s() if host_clock else 0.0
            queued_at_first_poll: list[int] = []  # tests shorter than a poll never read /proc

            def over_limit() -> str | None:
                _ticks, queued_ns = _tree_usage(self.process.pid)
                if host_clock and self._host_cpu_s() - cpu_before > timeout_s:
                    return "cpu_limit"
                queued_at_first_poll[:] = queued_at_first_poll or [queued_ns]
                if time.perf_counter() - started - (queued_ns - queued_at_first_poll[0]) / 1e9 > WALL_GUARD * timeout_s:
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
            raise ProgramEndedSandbox(self._stderr_tail())
        if reply.get("status") == "harness_error":
            raise SandboxError(f"{self.kind} harness failed: {reply['detail']}")
        if "value_json" in reply:
            checked = value_reply(reply.pop("value_json"))
            reply.update(checked, stderr=checked.get("stderr") or reply["stderr"])
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
        return _tree_usage(self.process.pid)[0] / CLOCK_TICKS

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
            self._runsc("delete", "--force", self.container_id)
            self.container_id = None
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill(self) -> None:
        if self.process.poll() is None and self.container_id:
            self._runsc("kill", self.container_id, "KILL")
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
        """The next reply line. `watch` = (over_limit, poll_s): every poll_s, tell the harness
        to stop the test once over_limit() names the limit passed."""
        fd = self.process.stdout.fileno()
        scanned = 0  # a reply can be tens of MB: look for the newline only in new bytes
        while (end := self._buffer.find(b"\n", scanned)) < 0:
            scanned = len(self._buffer)
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
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            return None

    def _stderr_tail(self) -> str:
        if self.process.poll() is None:
            self._kill()
        try:
            with open(self._stderr_path, "rb") as handle:
                handle.seek(max(0, os.path.getsize(self._stderr_path) - 1000))
                return handle.read().decode(errors="replace").strip()
        except OSError:
            return ""

    # -- the two sandboxes

    def _process_argv(self) -> tuple[list[str], dict]:
        prefix = () if self.kind in NAMESPACELESS else require_isolation("process") and namespace_prefix()
        scratch = os.path.join(self.workdir, "scratch")
        os.mkdir(scratch)
        for path in (self.workdir, scratch):  # the program's uid passes through, lists nothing
            os.chmod(path, 0o711)
        confined = bool(prefix)
        if not confined:
            _hide_this_process()
        setup = {
            "scratch": scratch,
            "confine_fs": confined,
            "uid": _worker_uid(),
            "watch_scratch_mb": None if confined else DEFAULT_LIMITS["scratch_mb"],
            # only namespaced tmpfs copies are ours to empty; never the host's /tmp
            "private_dirs": ["/tmp", "/var/tmp", "/dev/shm"] if confined else [],
        }
        return [*prefix, interpreter(), "-I", str(HARNESS)], setup

    def _runsc_argv(self) -> tuple[list[str], dict]:
        bundle = Path(self.workdir) / "bundle"
        rootfs = bundle / "rootfs"
        rootfs.mkdir(parents=True)
        shutil.copy(HARNESS, rootfs / "harness.py")
        prefix = os.path.realpath(sys.base_prefix)
        mounts = [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/scratch",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=755", f"size={DEFAULT_LIMITS['scratch_mb']}m"],
            },
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=755", "size=1m"],
            },
            {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]},
        ]
        if not prefix.startswith("/usr/"):
            mounts.append({"destination": prefix, "type": "bind", "source": prefix, "options": ["rbind", "ro"]})
        for name in ("bin", "lib", "lib64", "sbin"):
            host = Path("/") / name
            if host.is_symlink():
                (rootfs / name).symlink_to(os.readlink(host))
            elif host.is_dir():
                mounts.append(
                    {"destination": f"/{name}", "type": "bind", "source": str(host), "options": ["rbind", "ro"]}
                )
        for mount in mounts:
            (rootfs / mount["destination"].lstrip("/")).mkdir(parents=True, exist_ok=True)
        config = {
            "ociVersion": "1.0.2",
            "process": {
                "terminal": False,
                "user": {"uid": 0, "gid": 0},
                "args": [interpreter(), "-I", "/harness.py"],
                "env": [f"{k}={v}" for k, v in HOST_ENV.items()],
                "cwd": "/scratch",
                "noNewPrivileges": True,
                # the harness needs these to hand each test a directory and drop to UNPRIVILEGED_UID;
                # the program itself runs with none
                "capabilities": {key: CAPABILITIES for key in ("bounding", "effective", "permitted")},
            },
            "root": {"path": "rootfs", "readonly": True},
            "hostname": "sandbox",
            "mounts": mounts,
            "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]},
        }
        (bundle / "config.json").write_text(json.dumps(config))
        setup = {
            "scratch": "/scratch",
            "confine_fs": False,
            "uid": UNPRIVILEGED_UID,
            "private_dirs": ["/tmp", "/dev/shm"],
        }
        self.container_id = f"valley-{uuid.uuid4().hex[:16]}"
        return [*self._runsc_base(), "run", "--bundle", str(bundle), self.container_id], setup

    def _runsc_base(self) -> list[str]:
        flags = ["runsc", "--root", os.path.join(self.workdir, "state"), "--network=none", "--ignore-cgroups"]
        if os.geteuid() != 0:
            flags.append("--rootless")
        return flags

    def _runsc(self, *args: str) -> None:
        try:
            subprocess.run([*self._runsc_base(), *args], capture_output=True, timeout=10, env=HOST_ENV)
        except (OSError, subprocess.TimeoutExpired):
            pass


class CpuCgroup:
    """A CPU-accounting cgroup (v1 cpuacct, or v2) of one sandbox. `removed_cpu_s` sums the CPU
    of the sandboxes closed so far in this process (the benchmark's CPU-used figure)."""

    removed_cpu_s = 0.0
    _removed_lock = threading.Lock()

    def __init__(self, path: Path, usage: str):
        self.path, self.usage = path, usage
        self.procs = path / "cgroup.procs"

    @classmethod
    def make(cls, name: str) -> "CpuCgroup | None":
        """Below this process's own cgroup: a sandbox must stay inside the limits a pod, a container
        or a systemd unit put on the grader (on cgroup v2, or v1 with cpu and cpuacct mounted
        together, a cgroup made at the root would be outside them). None where this grader may
        not make one (not root, read-only cgroupfs): then the sandbox's live processes are read."""
        for parent, usage in cls.own():
            try:
                os.mkdir(parent / name)
            except OSError:
                continue
            return cls(parent / name, usage)
        return None

    @staticmethod
    def own() -> list[tuple[Path, str]]:
        """This process's cgroup directories that account CPU, each with its usage file: v1's
        cpuacct hierarchy first, then v2's unified one."""
        try:
            with open("/proc/self/cgroup", encoding="utf-8") as handle:
                entries = [line.rstrip("\n").split(":", 2) for line in handle if line.count(":") >= 2]
        except OSError:
            return []
        found = []
        for mount, usage, marker, controller in (
            ("/sys/fs/cgroup/cpuacct", "cpuacct.usage", "cpuacct.usage", "cpuacct"),
            ("/sys/fs/cgroup", "cpu.stat", "cgroup.controllers", ""),
        ):
            for _id, controllers, path in entries:
                if (controller in controllers.split(",")) if controller else controllers == "":
                    directory = Path(mount + path.rstrip("/"))
                    if (directory / marker).exists():
                        found.append((directory, usage))
        return found

    def cpu_s(self) -> float:
        text = (self.path / self.usage).read_text()
        if self.usage == "cpuacct.usage":
            return int(text) / 1e9
        return int(next(line.split()[1] for line in text.splitlines() if line.startswith("usage_usec"))) / 1e6

    def remove(self) -> None:
        with contextlib.suppress(OSError, ValueError, StopIteration), CpuCgroup._removed_lock:
            CpuCgroup.removed_cpu_s += self.cpu_s()
        for _ in range(50):  # the sandbox's last processes may still be exiting
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _input_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", errors="surrogatepass"), digest_size=16).hexdigest()


def _tree_usage(root: int) -> tuple[int, int]:
    """For `root` (a sandbox's host process) and its descendants: CPU clock ticks used (their
    own and their reaped children's) and nanoseconds their threads waited on a run queue (0
    where the kernel keeps no schedstat)."""
    stats = proc_stats()
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    ticks, queued_ns, frontier = 0, 0, [root] if root in stats else []
    while frontier:
        pid = frontier.pop()
        ticks += cpu_ticks(stats[pid])
        queued_ns += _run_queue_wait_ns(pid)
        frontier.extend(children.get(pid, ()))
    return ticks, queued_ns


def _run_queue_wait_ns(pid: int) -> int:
    total = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/schedstat", "rb") as handle:
                total += int(handle.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total


def _hide_this_process() -> None:
    """Without namespaces a program may run as the grader's own uid: then the grader's
    /proc/<pid>/environ, mem and fd must not be readable by it. A non-dumpable process's /proc
    files belong to root and it cannot be ptraced by its own uid."""
    import ctypes

    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0


def shares_uid(kind: str) -> bool:
    """Programs in sandboxes of this kind run as the grader's own uid (no namespace, no root)."""
    return kind in NAMESPACELESS and os.geteuid() != 0


_session_numbers = itertools.count()


def _worker_uid() -> int:
    """A uid no other live sandbox uses, so per-uid process limits stay per sandbox."""
    return 100_000 + (os.getpid() * 64 + next(_session_numbers) % 64) % 1_000_000


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
            session = self._idle.get(kind, []).pop() if self._idle.get(kind) else None
        fresh = session is None
        if fresh:
            session = Session(kind).start()
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
            if healthy:
                with self._lock:
                    self._idle.setdefault(kind, []).append(session)
            else:
                session.close()

    def close_all(self) -> None:
        with self._lock:
            sessions = [s for idle in self._idle.values() for s in idle]
            self._idle.clear()
        for session in sessions:
            session.close()


POOL = SessionPool()
