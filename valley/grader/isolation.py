"""Choosing the isolation: the sandbox kinds, and whether the one asked for works here.

* `runsc`: a gVisor container from an OCI bundle built per sandbox (launch.py).
* `process`: the harness as a confined host process in its own PID, network and mount
  namespaces (as root, or through a user namespace).
* `in-gvisor`: the grader itself runs under gVisor (a pod with RuntimeClass gvisor, where
  `unshare` is refused): programs run as confined processes without namespaces, gVisor is the
  wall around all of them. Refused unless the kernel answering is gVisor's.
* `unsafe-local`: the process sandbox without namespaces, on purpose (a laptop or CI container
  that refuses `unshare`). Every verdict row and /healthz name it; cluster runs refuse it.
* `auto`: runsc when the binary is on PATH, else process.

Fail closed: `require_isolation` (called before any grading) refuses a kind whose isolation
is unavailable here, with one line naming the fix; nothing falls back to a weaker mode.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from valley.errors import ConfigError

SANDBOX_KINDS = ("auto", "runsc", "process", "in-gvisor", "unsafe-local")
UNSAFE = "unsafe-local"
NAMESPACELESS = ("in-gvisor", UNSAFE)
HOST_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


class IsolationUnavailable(ConfigError):
    """The isolation asked for cannot be had here: the grader refuses to grade at all, and a
    command exits 3 (a configuration error: retrying on the same node cannot help)."""


def resolve_kind(kind: str) -> str:
    if kind not in SANDBOX_KINDS:
        raise ValueError(f"sandbox: unknown kind {kind!r}; use one of {', '.join(SANDBOX_KINDS)}")
    if kind == "auto":
        return "runsc" if shutil.which("runsc") else "process"
    return kind


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
            "namespaces are allowed, install runsc, or pass --sandbox unsafe-local to grade without namespaces (never "
            "on a cluster)"
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


def shares_uid(kind: str) -> bool:
    """Programs in sandboxes of this kind run as the grader's own uid (no namespace, no root)."""
    return kind in NAMESPACELESS and os.geteuid() != 0
