"""Choosing the isolation: the sandbox kinds, and whether the one asked for works here.

* `runsc`: a gVisor container from an OCI bundle built per sandbox (launch.py).
* `process`: the harness as a confined host process in its own PID, network, IPC and mount
  namespaces (as root, or through a user namespace).
* `in-gvisor`: the grader itself runs under gVisor (the pods' mode: RuntimeClass gvisor, uid
  10001, no capabilities): the harness gets user, PID, network and IPC namespaces (gVisor
  refuses a mount namespace there), gVisor is the wall around all of it. Refused unless the
  kernel answering is gVisor's and those namespaces can be had.
* `unsafe-local`: the process sandbox without namespaces, on purpose (a laptop or CI container
  that refuses `unshare`). Every verdict row and /healthz name it; cluster runs refuse it.

In every kind but a non-root unsafe-local, each test's program runs chrooted into its own empty
directory, in PID and IPC namespaces of its program's own (harness.py).
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
# kinds where a non-root grader's programs run as its own uid (no root to give them one of their
# own, and in-gvisor's user namespace maps only that uid): such sandboxes grade one program at a time
SHARED_UID_KINDS = ("in-gvisor", UNSAFE)
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


# the namespaces each kind's harness gets from `unshare`: gVisor refuses a mount namespace inside
# a pod, so in-gvisor goes without one (its test children's chroot hides the file system)
NAMESPACES = {
    "process": ("--pid", "--net", "--ipc", "--mount", "--fork", "--kill-child", "--mount-proc"),
    "in-gvisor": ("--pid", "--net", "--ipc", "--fork", "--kill-child"),
}


def namespace_prefix(kind: str) -> tuple[str, ...]:
    """The `unshare` invocation that works here for `kind` (process, in-gvisor), or () when none does."""
    return _namespace_probe(kind)[0]


@functools.lru_cache(maxsize=None)
def _namespace_probe(kind: str) -> tuple[tuple[str, ...], str]:
    """(the working `unshare` invocation or (), why none works): as root without a user
    namespace, else through one (the harness is then root of it, the grader's uid outside).
    `VALLEY_GRADER_NAMESPACES=0` makes it fail as a pod whose seccomp profile forbids `unshare`
    does (tests use it)."""
    unshare = shutil.which("unshare")
    if not unshare:
        return (), "no unshare binary on PATH"
    if os.environ.get("VALLEY_GRADER_NAMESPACES") == "0":
        return (), "VALLEY_GRADER_NAMESPACES=0"
    flags = NAMESPACES[kind]
    candidates = [(unshare, *flags)] if os.geteuid() == 0 else []
    candidates.append((unshare, "--user", "--map-root-user", *flags))
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
    if kind == "process" and not namespace_prefix(kind):
        raise IsolationUnavailable(
            f"process sandbox: unshare refused ({_namespace_probe(kind)[1]}); run the grader as root or where user "
            "namespaces are allowed, install runsc, or pass --sandbox unsafe-local to grade without namespaces (never "
            "on a cluster)"
        )
    if kind == "in-gvisor" and not under_gvisor():
        raise IsolationUnavailable(
            "in-gvisor sandbox: this grader is not running under gVisor; use it only in a pod with "
            "runtimeClassName gvisor, or pass --sandbox process"
        )
    if kind == "in-gvisor" and not namespace_prefix(kind):
        raise IsolationUnavailable(
            f"in-gvisor sandbox: unshare refused ({_namespace_probe(kind)[1]}); the programs need a user, PID, network "
            "and IPC namespace of their own inside the pod: allow unshare in its seccomp profile (gVisor's own "
            "sandbox stays the outer wall)"
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
    """Programs in sandboxes of this kind run as the grader's own uid (see SHARED_UID_KINDS)."""
    return kind in SHARED_UID_KINDS and os.geteuid() != 0
