"""The program runner that executes INSIDE a sandbox (gVisor container or confined process).

Stdlib only, run as a script: `python -I -S harness.py`. It speaks newline-delimited JSON on
its stdin/stdout with the grader outside:

    -> {"scratch": "/scratch", "uid": 65534, "scratch_tmpfs": false, "watch_disk": true,
        "program_namespaces": true, "stdlib_bytes": N}, then N bytes: the standard library image
    <- {"ready": true}
    then per program (a warm sandbox serves many, one after another):
    -> {"code": ..., "mode": "stdin"|"functional", "fn_name": ..., "limits": {...}}
    <- {"loaded": true} | {"compile_error": "..."}
    -> {"input": "...", "cpu_limit_s": 60, "wall_limit_s": 60, "watch_cpu_s": 6}   (one per test; the grader decides
       when to stop; with "watch_cpu_s" the harness stops the test itself once its CPU time passes it)
       (a large input also carries "input_key"; sent again, it is the key alone, and the reply
        {"status": "need_input"} asks for the text when this harness no longer holds it)
    -> {"stop": "cpu_limit"|"wall_limit"}      (only while a test runs: the grader saw a limit pass)
    <- {"status": "exited"|"timeout"|"runtime_error"|..., "time_s", "cpu_s", "max_rss_kb", "stages",
        "output": "stdout"|"value"|null, "output_bytes": n, "stderr_bytes": m}, then n raw bytes of the
        program's stdout or value channel and m raw bytes of its stderr's tail (never escaped into JSON)
    -> {"end": true}                            (kill leftovers, empty scratch)
    <- {"ended": true}

Four kinds of process, each holding only what it needs:
* the template (this script's first process; PID 1 of the sandbox's namespaces where it has
  them) holds the setup, LiveCodeBench's import prelude and the standard library image, and
  never anything of a program: it only forks zygotes;
* the protocol process speaks with the grader, keeps inputs, writes each test's files and
  reads the outputs (it holds programs' data and never forks a program);
* a zygote per program, forked from the template, is PID 1 of the program's own PID and IPC
  namespaces: it compiles the program once, forks a child per test, accounts the CPU of every
  process the test started (reaped, unreaped, double-forked: they are all its descendants or
  reaped by it), and kills them all after each test; its namespaces die with it, so nothing a
  program starts or makes (processes, System V IPC objects) outlives the program;
* the test child, which becomes the program: its own session, rlimits, no capabilities, a
  seccomp filter, an unprivileged uid where the sandbox has one, and a root of its own: it
  chroots into its test's empty working directory, so no path of the host, the harness, the
  grader or another program (/proc included) exists for it. The standard library's modules
  come from the image in memory (the template imported its compiled extension modules ahead).

Expected outputs never enter the sandbox and verdicts are computed outside, so a program can
neither read the answers nor forge a passing result; and a test child is forked from a state
that never held another program's code, input or output.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.machinery
import importlib.util
import json
import linecache
import marshal
import math
import os
import resource
import select
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
import traceback
from collections import OrderedDict

try:  # imported by the grader: a module of the package
    from valley.grader.confine import drop_privileges, libc, mapped, prctl, set_limits
except ImportError:  # run as the sandbox's script: confine.py lies beside it
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from confine import drop_privileges, libc, mapped, prctl, set_limits

# LiveCodeBench's `import_string` (lcb_runner/evaluation/testing_util.py), run before every program.
LCB_PRELUDE = """\
from string import *
from re import *
from datetime import *
from collections import *
from heapq import *
from bisect import *
from copy import *
from math import *
from random import *
from statistics import *
from itertools import *
from functools import *
from operator import *
from io import *
from sys import *
from json import *
from builtins import *
from typing import *
import string
import re
import datetime
import collections
import heapq
import bisect
import copy
import math
import random
import statistics
import itertools
import functools
import operator
import io
import sys
import json
sys.setrecursionlimit(50000)
"""

DEFAULT_LIMITS = {
    "address_space_mb": 4096,  # LiveCodeBench's comment says 4 GB
    "processes": 64,
    "file_size_mb": 64,  # also the cap on captured stdout
    "open_files": 256,
    "stack_mb": 1024,
    "scratch_mb": 512,
    "scratch_entries": 100_000,  # files and directories a test may leave where the disk is watched
}
CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWIPC, CLONE_NEWPID = 0x08000000, 0x20000000
MS_NOSUID, MS_NODEV = 2, 4
CACHED_INPUT_CHARS = 64 * 1024  # inputs this large are sent once per sandbox, then named by key
INPUT_CACHE_CHARS = 48 * 1024 * 1024
STATUS_EXIT_CODE = {"missing_method": 121, "unserialisable": 122}
STDERR_TAIL = 2000
UNSERIALISABLE = "the return value cannot cross the sandbox boundary (hostile type or nested too deeply)"
TRACEBACK_FRAMES = 30
DISK_POLL_S = 0.05
POLLS_PER_LIMIT = 20  # how often per CPU limit a watch (this harness's or the grader's) reads the CPU time
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MESSAGE_BYTES = 1 << 16  # the largest control message between the harness's own processes
# extension modules the template does not import ahead (their libraries are large, they need a
# display, a terminal or a database file, or they exist only for CPython's own tests): a program
# importing one gets ModuleNotFoundError, as for anything outside the standard library
UNLOADED_EXTENSIONS = (
    "_asyncio",  # asyncio falls back to its pure-Python parts
    "_hashlib",  # hashlib falls back to the built-in hashes
    "_ssl",
    "_tkinter",
    "_curses",
    "_curses_panel",
    "readline",
    "_dbm",
    "_gdbm",
    "nis",
    "spwd",
    "_crypt",
    "ossaudiodev",
    "audioop",
    "_ctypes_test",
    "xxlimited",
    "xxlimited_35",
    "xxsubtype",
    "_xxsubinterpreters",
    "_xxtestfuzz",
    "_testbuffer",
    "_testcapi",
    "_testclinic",
    "_testimportmultiple",
    "_testinternalcapi",
    "_testmultiphase",
)


# ---- tagged values: a functional program's return value crosses the sandbox boundary as JSON
# without losing the Python types `==` depends on (tuple vs list, set, float specials, Fraction).
# The program's own process writes the value, so whatever arrives is treated as the program's
# output: the grader (values.py) turns anything malformed into the program's runtime error.

MAX_DEPTH = 200
MAX_JSON_INT_BITS = 13_000  # ~3,900 digits: plain JSON numbers stay under Python's 4,300-digit str/int limit


def encode_value(value, depth: int = 0):
    import decimal
    import fractions

    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    # a subclass's own methods never run here: the base type's do
    if value is None or isinstance(value, bool):
        return None if value is None else bool.__bool__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        value = int.__int__(value)
        return value if value.bit_length() <= MAX_JSON_INT_BITS else {"int": hex(value)}  # hex: no 4,300-digit limit
    if isinstance(value, float):
        value = float.__float__(value)
        return value if math.isfinite(value) else {"float": float.__repr__(value)}
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        kind = next(k for k in (list, tuple, set, frozenset, dict) if isinstance(value, k))
        items = list(dict.items(value) if kind is dict else kind.__iter__(value))
        if kind is dict:
            return {"dict": [[encode_value(k, depth + 1), encode_value(v, depth + 1)] for k, v in items]}
        encoded = [encode_value(v, depth + 1) for v in items]
        return encoded if kind is list else {"tuple" if kind is tuple else "set": encoded}
    if isinstance(value, fractions.Fraction):
        return {"fraction": [hex(int(value.numerator)), hex(int(value.denominator))]}
    if isinstance(value, decimal.Decimal):
        return {"decimal": decimal.Decimal.__str__(value)}
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return encode_value(value.item(), depth + 1)  # np.int64(3) == 3 holds in LCB's comparison too
    return {"opaque": str(type.__getattribute__(type(value), "__name__"))[:100]}


def encode_result(value) -> str | None:
    """The JSON text of a return value, or None when it cannot cross (a hostile subclass raising
    from its methods, a value nested past MAX_DEPTH)."""
    try:
        return json.dumps(encode_value(value))
    except Exception:
        return None


class InputCache:
    """Inputs of recent tests, least recently used out first past `cap` characters. The harness
    keeps the text; the grader keeps the same bookkeeping (no data) to know what it need not
    send again: the samples of one problem share their tests' inputs."""

    def __init__(self, cap: int = INPUT_CACHE_CHARS):
        self.cap, self.size, self.entries = cap, 0, OrderedDict()

    def get(self, key: str):
        if key not in self.entries:
            return None
        self.entries.move_to_end(key)
        return self.entries[key][0]

    def put(self, key: str, value, chars: int) -> None:
        if key in self.entries:
            self.size -= self.entries.pop(key)[1]
        self.entries[key] = (value, chars)
        self.size += chars
        while self.size > self.cap:
            _key, (_value, evicted) = self.entries.popitem(last=False)
            self.size -= evicted


# ---- the standard library, in memory: a test child's root holds nothing but its own files


class StdlibImage:
    """A meta-path finder and loader over the compiled standard library the grader sent
    (`{module name: (is package, file name, marshalled code)}`): imports work after chroot."""

    def __init__(self, modules: dict):
        self.modules = modules

    def find_spec(self, fullname, path=None, target=None):
        entry = self.modules.get(fullname)
        if entry is None:
            return None
        is_package, origin, _code = entry
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=origin, is_package=is_package)
        if is_package:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        spec.has_location = True
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(marshal.loads(self.modules[module.__spec__.name][2]), module.__dict__)  # noqa: S102

    def get_source(self, fullname):
        return None


def _load_stdlib(data: bytes) -> StdlibImage | None:
    if not data:
        return None
    magic, modules = marshal.loads(data)
    if magic != importlib.util.MAGIC_NUMBER:
        raise RuntimeError("the standard library image was compiled for another Python version")
    return StdlibImage(modules)


def _import_extensions() -> None:
    """Import the standard library's compiled extension modules now: after chroot their shared
    objects cannot be opened, so a program finds them already loaded."""
    for directory in sys.path:
        if not directory.endswith("lib-dynload") or not os.path.isdir(directory):
            continue
        for entry in sorted(os.listdir(directory)):
            name = entry.split(".", 1)[0]
            if entry.endswith(".so") and name not in UNLOADED_EXTENSIONS and name not in sys.modules:
                try:
                    importlib.import_module(name)
                except Exception:
                    continue


# ---- the test child: becomes the program


def _child(job: dict, code, test: dict, fds: tuple[int, ...]) -> None:
    """Runs in the forked child; never returns."""
    status = 1
    try:
        os.setsid()
        # fd 3 is the value channel of a functional program; a stdin program gets no fd 3
        targets = (0, 1, 2, 3) if job["mode"] == "functional" else (0, 1, 2)
        for target, fd in zip(targets, fds, strict=False):
            os.dup2(fd, target)
        os.closerange(len(targets), 65536)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; output past the cap ends the program
        signal.set_wakeup_fd(-1)
        set_limits(job["limits"], test["cpu_limit_s"])
        home = test["workdir"]
        if job["chroot"]:
            os.chroot(test["workdir"])  # the test's empty working directory becomes the whole file system
            home = "/"
            sys.meta_path.insert(0, job["stdlib"])
        os.chdir(home)
        drop_privileges(job.get("uid"))
        os.environ.clear()
        os.environ.update(CHILD_ENV, HOME=home, TMPDIR=home)
        sys.stdin = sys.__stdin__ = open(0, "r", encoding="utf-8", errors="replace", closefd=False)
        sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", closefd=False)
        sys.argv = ["solution.py"]
        _roomy_deep_threads()
        status = _in_roomy_chunk(_run_program, job, code)
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        try:
            traceback.print_exc(limit=-TRACEBACK_FRAMES)
        except BaseException:
            pass
        status = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            status = status or 1
        os._exit(status if isinstance(status, int) and 0 <= status < 256 else 1)  # exit(256) is no pass


# CPython keeps frames on a "data stack" of chunks and unmaps a chunk as soon as its frames return,
# so recursion that goes down and back up past a chunk boundary maps fresh memory on every way down:
# ~26 page faults per call and, under gVisor, an mmap and a munmap through the Sentry (2,000 calls
# 1,000 deep: 0.34 CPU-s natively, 2.6-3.2 under runsc). A frame reserving just over 32 MiB of stack
# gets a 64 MiB chunk (virtual; pages never touched cost nothing), and the program's frames, called
# from it, fill the other half without ever needing a new chunk.
ROOMY_FRAME_WORDS = (32 << 20) // 8 + 64


def _in_roomy_chunk(function, *args):
    return function(*args)


_in_roomy_chunk.__code__ = _in_roomy_chunk.__code__.replace(co_stacksize=ROOMY_FRAME_WORDS)
# Threads started with a stack this large are the `threading.stack_size(1 << 27)` idiom of deep
# recursion (an lru_cache DP in one: 9.4 CPU-s under runsc against 1.6 natively): they get a roomy
# chunk too. Other threads keep CPython's small ones (64 of them at 64 MiB would fill the 4 GiB).
ROOMY_THREAD_STACK = 32 << 20


def _roomy_deep_threads() -> None:
    bootstrap = threading.Thread._bootstrap_inner

    def bootstrap_inner(thread):
        if threading.stack_size() >= ROOMY_THREAD_STACK:
            return _in_roomy_chunk(bootstrap, thread)
        return bootstrap(thread)

    threading.Thread._bootstrap_inner = bootstrap_inner


def _run_program(job: dict, code) -> int:
    namespace = {"__name__": "__main__" if job["mode"] == "stdin" else "solution", "__builtins__": __builtins__}
    exec(job["prelude"], namespace)  # noqa: S102
    if job["mode"] == "stdin":
        exec(code, namespace)  # noqa: S102
        return 0
    try:
        exec(code, namespace)  # noqa: S102
        target = namespace["Solution"]() if "Solution" in namespace else None
        method = getattr(target, job["fn_name"]) if target is not None else namespace[job["fn_name"]]
    except Exception:
        traceback.print_exc(limit=-TRACEBACK_FRAMES)
        return STATUS_EXIT_CODE["missing_method"]
    text = _read(0, os.fstat(0).st_size).decode("utf-8", errors="surrogatepass")
    args = [json.loads(line) for line in text.split("\n")]
    result = method(*args)
    encoded = encode_result(result)
    if encoded is None:
        return STATUS_EXIT_CODE["unserialisable"]
    # whatever the program wrote into fd 3 itself is dropped: only the returned value counts
    os.ftruncate(3, 0)
    data, offset = encoded.encode(), 0
    while offset < len(data):
        offset += os.pwrite(3, data[offset:], offset)
    return 0


# ---- the zygote: one per program, PID 1 of the program's namespaces


class Zygote:
    """Compiles one program and runs each of its tests in a forked child, which it watches,
    accounts and cleans up after."""

    def __init__(self, channel: socket.socket, template: "Template", own_namespaces: bool):
        self.channel, self.template = channel, template
        self.is_init = os.getpid() == 1
        self.own_namespaces = own_namespaces
        if not self.is_init:
            prctl(PR_SET_CHILD_SUBREAPER, 1)  # every orphan of the program comes back here
        self.pid = _procfs_pid()  # this process's pid as /proc numbers it (its outer one)
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wake_w)
        self.job: dict = {}
        self.code = None

    def serve(self) -> None:
        while True:
            message, fds = _receive(self.channel)
            if message is None:
                break
            if "code" in message:
                reply = self.load(message, fds[0])
            elif "workdir" in message:
                reply = self.run_test(message, fds)
            elif "end" in message:
                self._kill_leftovers()
                _send(self.channel, {"ended": True})
                break
            else:
                continue  # a stop that came after its test had ended
            for fd in fds:
                os.close(fd)
            _send(self.channel, reply)
        self._kill_leftovers()

    def load(self, program: dict, code_fd: int) -> dict:
        if self.template.setup.get("program_namespaces") and not self.own_namespaces:
            return {"status": "harness_error", "detail": "the program's PID and IPC namespaces were refused"}
        text = _read(code_fd, os.fstat(code_fd).st_size).decode("utf-8", errors="surrogatepass")
        self.job = {
            **program,
            "uid": self.template.uid,
            "chroot": self.template.chroot,
            "stdlib": self.template.stdlib,
            "prelude": self.template.prelude,
            "limits": {**DEFAULT_LIMITS, **program.get("limits", {})},
        }
        # tracebacks then quote the program's lines without a file lookup per frame (slow in gVisor)
        linecache.cache["solution.py"] = (len(text), None, text.splitlines(True), "solution.py")
        try:
            self.code = compile(text, "solution.py", "exec")
        except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError) as error:
            return {"compile_error": f"{type(error).__name__}: {error}"}
        return {"loaded": True}

    def run_test(self, test: dict, fds: list[int]) -> dict:
        before = _children_cpu_s()
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            self.channel.close()
            _child(self.job, self.code, test, tuple(fds))
        forked = time.perf_counter() - started
        outcome, status, usage = self._wait(pid, started + test["wall_limit_s"], test, before)
        elapsed = time.perf_counter() - started
        self._kill_leftovers()
        return {
            "outcome": outcome,
            "wait_status": status,
            "time_s": round(elapsed, 4),
            "cpu_s": round(_children_cpu_s() - before, 4),  # every process of the test, reaped here
            "max_rss_kb": usage.ru_maxrss if usage else None,
            "fork_s": forked,
        }

    def _wait(self, pid: int, deadline: float, test: dict, cpu_before: float):
        """Until the child exits, the CPU time of everything the test started passes
        `watch_cpu_s` (read POLLS_PER_LIMIT times per limit, where that is the host kernel's or
        gVisor's clock), the protocol process forwards the grader's stop (the grader watches the
        CPU time where this sandbox's own clock cannot, under runsc, and the wall-clock guard net
        of run-queue waits), the backstop deadline passes, or the disk watch trips."""
        watch_cpu_s = test.get("watch_cpu_s")
        limits = self.job["limits"]
        watch_disk = self.template.setup.get("watch_disk")
        polls = [DISK_POLL_S] if watch_disk else []
        if watch_cpu_s is not None:
            polls.append(watch_cpu_s / POLLS_PER_LIMIT)
        stopped = None
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:  # what it left counts too, however fast it wrote it
                return "disk_limit" if watch_disk and _over_disk(test["workdir"], limits) else "exited", status, usage
            remaining = deadline - time.perf_counter()
            over_disk = watch_disk and _over_disk(test["workdir"], limits)
            if watch_cpu_s is not None and self._test_cpu_s(cpu_before) > watch_cpu_s:
                stopped = "cpu_limit"
            if remaining <= 0 or over_disk or stopped:
                _kill_group(pid)
                _done, status, usage = os.wait4(pid, 0)
                outcome = "disk_limit" if over_disk else stopped if stopped in ("cpu_limit", "wall_limit") else None
                return outcome or "wall_limit", status, usage
            ready, _, _ = select.select([self.wake_r, self.channel], [], [], min([remaining, *polls]))
            if self.channel in ready:  # the only message during a test: a stop, or EOF when the harness left
                message, fds = _receive(self.channel)
                for fd in fds:
                    os.close(fd)
                stopped = (message or {}).get("stop", "wall_limit")
            try:
                os.read(self.wake_r, 4096)
            except BlockingIOError:
                pass

    def _test_cpu_s(self, before: float) -> float:
        """CPU seconds of every process this test started: those already reaped here, and the
        live ones below this zygote (their own time and their reaped children's)."""
        live = sum(cpu_ticks(fields) for fields in _descendant_stats(self.pid).values()) / CLOCK_TICKS
        return _children_cpu_s() - before + live

    def _kill_leftovers(self) -> None:
        """No process outlives its test: detached children included."""
        if self.is_init:
            try:
                os.kill(-1, signal.SIGKILL)  # as PID 1: everything else in the program's namespace
            except ProcessLookupError:
                pass
            _reap(block=True)
            return
        for _ in range(50):
            orphans = list(_descendant_stats(self.pid))
            if not orphans:
                break
            for orphan in orphans:
                _kill_group(orphan)
                try:
                    os.kill(orphan, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _reap(block=False)
        _reap(block=False)


# ---- the template: clean, forks a zygote per program


class Template:
    """The sandbox's first process: holds the setup, the prelude and the standard library
    image, and forks each program's zygote, never touching a program's data."""

    def __init__(self, setup: dict, stdlib: StdlibImage | None):
        self.setup = setup
        self.uid = setup.get("uid") if mapped(setup.get("uid")) else None
        # a chroot needs CAP_SYS_CHROOT: root, or root of a user namespace; never without the image
        self.chroot = os.geteuid() == 0 and stdlib is not None
        self.stdlib = stdlib
        self.is_init = os.getpid() == 1
        prctl(PR_SET_DUMPABLE, 0)
        if not self.is_init:
            prctl(PR_SET_CHILD_SUBREAPER, 1)
        exec(LCB_PRELUDE, {})  # noqa: S102 - import once here; every forked child then finds them loaded
        if self.chroot:
            _import_extensions()
        self.prelude = compile(LCB_PRELUDE, "<prelude>", "exec")

    def serve(self, control: socket.socket) -> None:
        """Fork a zygote for each request of the protocol process, until it is gone."""
        self.wake = wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wake_w)
        while True:
            ready, _, _ = select.select([control, wake_r], [], [])
            _reap(block=False)
            if wake_r in ready:
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
            if control in ready:
                message, fds = _receive(control)
                if message is None:
                    break
                channel = self._spawn(control)
                socket.send_fds(control, [b"{}"], [channel])
                os.close(channel)
        if not self.is_init:
            for orphan in _descendant_stats(_procfs_pid()):
                _kill_group(orphan)
        os._exit(0)  # as PID 1, the kernel kills everything left in the sandbox

    def _spawn(self, control: socket.socket) -> int:
        """A new zygote; returns the protocol process's end of its channel."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        intermediate = os.fork()
        if intermediate == 0:
            try:
                control.close()
                ours.close()
                for fd in self.wake:
                    os.close(fd)
                # the first child forked after this is PID 1 of a fresh PID and IPC namespace
                own = libc().unshare(CLONE_NEWPID | CLONE_NEWIPC) == 0
                if os.fork() == 0:  # its channel's end, and the test children's, is its lifetime
                    Zygote(theirs, self, own).serve()
            finally:
                os._exit(0)
        theirs.close()
        os.waitpid(intermediate, 0)
        return ours.detach()


# ---- the protocol process: the grader's side of the sandbox


class Protocol:
    """Speaks with the grader: hands programs and tests to the zygotes, writes each test's
    files and reads its outputs. It holds programs' data, so it never forks a program."""

    def __init__(self, setup: dict, control: socket.socket):
        self.setup, self.control = setup, control
        self.scratch = setup["scratch"]
        self.uid = setup.get("uid") if mapped(setup.get("uid")) else None
        self.inputs = InputCache()
        self.zygote: socket.socket | None = None
        self.program: dict = {}
        self.test_index = 0

    def run(self) -> None:
        stdin = sys.stdin.buffer
        _reply({"ready": True})
        for line in stdin:
            parsed = time.perf_counter()
            message = json.loads(line)
            parsed = time.perf_counter() - parsed
            try:
                if "code" in message:
                    self.end_program()
                    _reply(self.load(message))
                elif "input" in message or "input_key" in message:
                    self.run_test(message, parsed)
                elif "stop" in message:
                    continue  # it came after its test had ended
                else:
                    self.end_program()
                    _reply({"ended": True})
            except Exception:  # the harness's own failure: the grader retries it as an infra error
                _reply({"status": "harness_error", "detail": traceback.format_exc()[-1500:]})
        self.end_program()

    def load(self, program: dict) -> dict:
        """A fresh zygote for this program, which compiles it."""
        self.program = program
        self.zygote = self._new_zygote()
        code_fd = _anonymous_file(self.scratch)
        try:
            _write_all(code_fd, program["code"].encode("utf-8", errors="surrogatepass"))
            _send(self.zygote, {k: v for k, v in program.items() if k != "code"} | {"code": True}, [code_fd])
        finally:
            os.close(code_fd)
        reply, _fds = _receive(self.zygote)
        if reply is None or reply.get("status") == "harness_error":
            raise RuntimeError(f"the zygote failed: {(reply or {}).get('detail', 'it ended')}")
        return reply

    def _new_zygote(self) -> socket.socket:
        _send(self.control, {"zygote": True})
        _message, fds = _receive(self.control)
        return socket.socket(fileno=fds[0])

    def end_program(self) -> None:
        """Nothing of one program reaches the next: its processes and namespaces gone, its files removed."""
        if self.zygote is not None:
            _send(self.zygote, {"end": True})
            _receive(self.zygote)  # its leftovers are killed; then it exits, and its namespaces with it
            self.zygote.close()
            self.zygote = None
        _remove_tree(self.scratch, keep_top=True)

    def run_test(self, test: dict, parsed_s: float) -> None:
        """Run one test through the zygote and reply with its result and output."""
        if "input" in test:
            if "input_key" in test:
                self.inputs.put(test["input_key"], test["input"], len(test["input"]))
        elif (cached := self.inputs.get(test["input_key"])) is not None:
            test["input"] = cached
        else:
            return _reply({"status": "need_input"})  # evicted here: the grader sends it again
        if self.zygote is None:  # the program took its zygote down in an earlier test
            self.load(self.program)
        self.test_index += 1
        # unpredictable names: a program sharing the harness's uid (no namespaces, non-root)
        # cannot squat the next test's directory or files and so turn its own test into an error
        workdir = tempfile.mkdtemp(prefix=f"t{self.test_index}-", dir=self.scratch)
        if self.uid is not None and os.geteuid() == 0:
            os.chown(workdir, self.uid, self.uid)
        # stdin, stdout, stderr and the value channel: files without a name (unlinked at once),
        # so no program, this one or another sandbox's, can open them by path
        written = time.perf_counter()
        fds = tuple(_anonymous_file(self.scratch) for _ in range(4))
        _write_all(fds[0], test.pop("input").encode("utf-8", errors="surrogatepass"))
        os.lseek(fds[0], 0, os.SEEK_SET)
        written = time.perf_counter() - written
        try:
            _send(self.zygote, {**test, "workdir": workdir}, list(fds))
            ran = self._await_zygote()
            collected = time.perf_counter()
            if ran is None:  # the zygote is gone: only the program can have done that
                self.zygote.close()
                self.zygote = None
                result, output = {"status": "runtime_error", "detail": "the program ended its supervisor"}, ()
                stderr = b"the program ended its supervisor"
            else:
                result = {"time_s": ran["time_s"], "cpu_s": ran["cpu_s"], "max_rss_kb": ran["max_rss_kb"]}
                status, output, stderr = self._classify(ran["outcome"], ran["wait_status"], fds[1:])
                result.update(status)
            result["output"] = output[0] if output else None
            result["output_bytes"] = output[2] if output else 0
            result["stderr_bytes"] = len(stderr)
            result["stages"] = {
                "parse_s": parsed_s,
                "write_s": written,
                "fork_s": ran["fork_s"] if ran else 0.0,
                "collect_s": time.perf_counter() - collected,
            }
            _reply(result, (output, stderr))
        finally:
            for fd in fds:
                os.close(fd)
            _remove_tree(workdir)

    def _await_zygote(self) -> dict | None:
        """The zygote's account of the test; meanwhile the grader's stop is passed on."""
        while True:
            ready, _, _ = select.select([0, self.zygote], [], [])
            if 0 in ready:  # the only message sent during a test: {"stop": limit}, or EOF when the grader left
                try:
                    stop = json.loads(os.read(0, 4096))["stop"]
                except (ValueError, KeyError, TypeError):
                    stop = "wall_limit"
                _send(self.zygote, {"stop": stop})
            if self.zygote in ready:
                message, _fds = _receive(self.zygote)
                return message

    def _classify(self, outcome: str, status: int, fds: tuple[int, int, int]) -> tuple[dict, tuple, bytes]:
        """(status fields, the output to send as (channel, fd, size) or (), stderr's tail)."""
        limits = {**DEFAULT_LIMITS, **self.program.get("limits", {})}
        cap = limits["file_size_mb"] * 1024 * 1024
        stdout_fd, stderr_fd, value_fd = fds
        size = os.fstat(stderr_fd).st_size
        stderr_tail = os.pread(stderr_fd, STDERR_TAIL, max(0, min(size, cap) - STDERR_TAIL))
        if outcome in ("wall_limit", "cpu_limit"):
            return {"status": "timeout", "limit": outcome}, (), stderr_tail
        if outcome == "disk_limit":
            over = f"files over {limits['scratch_mb']} MiB or {limits['scratch_entries']} entries in its directory"
            return {"status": "output_limit"}, (), over.encode()
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
            kind = {signal.SIGXCPU: "timeout", signal.SIGXFSZ: "output_limit"}.get(signum, "runtime_error")
            status_fields = {"status": kind, "signal": signum, **({"limit": "cpu_limit"} if kind == "timeout" else {})}
            return status_fields, (), stderr_tail
        code = os.WEXITSTATUS(status)
        functional = self.program.get("mode") == "functional"
        if code == STATUS_EXIT_CODE["missing_method"] and functional:
            return {"status": "compile_error"}, (), stderr_tail
        if code == STATUS_EXIT_CODE["unserialisable"] and functional:
            return {"status": "runtime_error", "exit_code": code}, (), UNSERIALISABLE.encode()
        if code != 0:
            return {"status": "runtime_error", "exit_code": code}, (), stderr_tail
        # passed through untouched (decoded outside: big values cost the sandbox no CPU twice)
        fd = value_fd if functional else stdout_fd
        output = ("value" if functional else "stdout", fd, min(os.fstat(fd).st_size, cap))
        return {"status": "exited"}, output, stderr_tail


def _reply(message: dict, data: tuple = ()) -> None:
    """A reply line, then the raw bytes it announces (output_bytes from a file, stderr_bytes)."""
    _write_all(1, (json.dumps(message) + "\n").encode())
    if data:
        output, stderr = data
        if output:
            _channel, fd, size = output
            offset = 0
            while offset < size:
                sent = os.sendfile(1, fd, offset, size - offset)
                if sent == 0:  # the file shrank under us: pad, the reply announced `size` bytes
                    _write_all(1, b"\0" * (size - offset))
                    break
                offset += sent
        _write_all(1, stderr)


# ---- the harness's own processes talk over Unix datagram-like sockets (small JSON messages,
# file descriptors alongside)


def _send(channel: socket.socket, message: dict, fds: list[int] = ()) -> None:
    socket.send_fds(channel, [json.dumps(message).encode()], list(fds))


def _receive(channel: socket.socket) -> tuple[dict | None, list[int]]:
    try:
        data, fds, _flags, _address = socket.recv_fds(channel, MESSAGE_BYTES, 8)
    except OSError:
        return None, []
    if not data:
        return None, fds
    return json.loads(data), fds


# ---- processes


def _procfs_pid() -> int:
    """This process's pid in the PID namespace /proc shows (an outer one, once nested)."""
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return os.getpid()


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _reap(block: bool) -> None:
    while True:
        try:
            done, _status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if not done:
            return


def stat_fields(raw: bytes) -> list[bytes]:
    """/proc/<pid>/stat's fields after the command name (which may hold spaces and parentheses)."""
    return raw[raw.rindex(b")") + 2 :].split()


def cpu_ticks(fields: list[bytes]) -> int:
    """From a process's /proc/<pid>/stat fields after the command name: utime, stime, cutime, cstime."""
    return sum(int(value) for value in fields[11:15])


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def proc_stats() -> dict[int, list[bytes]]:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...), for every process
    still there; the grader reads them too (cpu.py), for a sandbox's CPU time."""
    stats: dict[int, list[bytes]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    raw = handle.read()
            except OSError:
                continue
            stats[int(entry)] = stat_fields(raw)
    return stats


def _descendant_stats(root: int) -> dict[int, list[bytes]]:
    """The /proc stat fields of every live descendant of `root` (pids as /proc numbers them)."""
    stats = proc_stats()
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    found, frontier = {}, list(children.get(root, ()))
    while frontier:
        pid = frontier.pop()
        found[pid] = stats[pid]
        frontier.extend(children.get(pid, ()))
    return found


# ---- files


def _anonymous_file(directory: str) -> int:
    fd, path = tempfile.mkstemp(prefix=".io-", dir=directory)  # O_EXCL, random name, retried
    os.unlink(path)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read(fd: int, size: int) -> bytes:
    chunks, offset = [], 0
    while offset < size and (chunk := os.pread(fd, min(size - offset, 1 << 20), offset)):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _tree(top: str):
    """(directory fd, name, lstat, is a directory) for every entry below `top`, each directory
    after its contents, whatever modes the program set: a directory it made unreadable or
    untraversable (0300, 0) gets its owner's rights back before it is read. Iterative, on file
    descriptors and streamed: no recursion, path length or listing size a program could use to
    hide a tree from the disk watch or the cleanup."""
    try:
        root = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except PermissionError:
        try:
            os.chmod(top, 0o700)
            root = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return
    except OSError:
        return
    stack = [(root, os.scandir(root), None)]
    try:
        while stack:
            fd, listing, this = stack[-1]
            entry = next(listing, None)
            if entry is None:
                listing.close()
                stack.pop()
                os.close(fd)
                if this is not None:
                    yield this
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISDIR(info.st_mode):
                yield fd, entry.name, info, False
                continue
            try:
                if info.st_mode & 0o700 != 0o700:  # the program took its own rights away: give them back
                    os.chmod(entry.name, 0o700, dir_fd=fd)
                child = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                yield fd, entry.name, info, True
                continue
            stack.append((child, os.scandir(child), (fd, entry.name, info, True)))
    finally:
        for fd, listing, _this in stack:
            listing.close()
            os.close(fd)


def _remove_tree(top: str, keep_top: bool = False) -> None:
    """Remove `top` and everything below it, whatever the program did to the modes."""
    for parent, name, _info, is_dir in _tree(top):
        try:
            os.rmdir(name, dir_fd=parent) if is_dir else os.unlink(name, dir_fd=parent)
        except OSError:
            pass
    if not keep_top:
        try:
            os.rmdir(top)
        except OSError:
            pass


def _over_disk(workdir: str, limits: dict) -> bool:
    """Whether the test's files pass the scratch size or entry count (where no size-capped tmpfs
    holds them); the walk stops as soon as one does."""
    size, count = 0, 0
    for _parent, _name, info, _is_dir in _tree(workdir):
        size += info.st_blocks * 512
        count += 1
        if size > limits["scratch_mb"] * 1024 * 1024 or count > limits["scratch_entries"]:
            return True
    return False


def _mount_tmpfs(target: str, size_mb: int) -> None:
    if libc().mount(b"tmpfs", target.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,mode=0755".encode()):
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {target}: {os.strerror(errno)}")


def _read_exact(stream, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the grader closed the pipe before the standard library image was complete")
    return data


def main() -> None:
    stdin = sys.stdin.buffer
    setup = json.loads(stdin.readline())
    stdlib = _load_stdlib(_read_exact(stdin, setup.get("stdlib_bytes", 0)))
    if setup.get("scratch_tmpfs"):  # a private, size-capped scratch (the process sandbox's mount namespace)
        os.makedirs(setup["scratch"], exist_ok=True)
        _mount_tmpfs(setup["scratch"], DEFAULT_LIMITS["scratch_mb"])
    template = Template(setup, stdlib)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if os.fork() == 0:
        ours.close()
        try:
            Protocol(setup, theirs).run()
        finally:
            os._exit(0)
    theirs.close()
    for fd in (0, 1):  # the grader's pipes belong to the protocol process alone
        os.close(fd)
    template.serve(ours)


if __name__ == "__main__":
    main()
