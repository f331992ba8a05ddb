"""Launching the harness (valley/grader/harness.py) in each sandbox kind: the command line and
the harness's setup message.

* `runsc`: a gVisor container from an OCI bundle built per sandbox: read-only root holding only
  the harness, read-only binds of /usr and the interpreter's prefix, tmpfs /scratch and /tmp
  (writes never reach the host), no network (`--network=none`), no host environment.
* `process`: the harness as a confined host process: its own PID, network and mount namespaces
  (`unshare`), tmpfs over scratch and every world-writable or secret-holding directory, a
  scrubbed environment, its own session; the harness adds rlimits, an unprivileged uid and a
  fresh working directory per test.
* `in-gvisor`, `unsafe-local`: the same process without namespaces.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from valley.grader.harness import DEFAULT_LIMITS
from valley.grader.isolation import HOST_ENV, NAMESPACELESS, namespace_prefix, require_isolation

HARNESS = Path(__file__).with_name("harness.py")
UNPRIVILEGED_UID = 65534
CAPABILITIES = ["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_FOWNER"]


def scratch_root() -> str:
    return os.environ.get("VALLEY_GRADER_TMPDIR") or tempfile.gettempdir()


def interpreter() -> str:
    """The base interpreter (not a venv's): it runs with -I and needs only the stdlib."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def process_launch(kind: str, workdir: str) -> tuple[list[str], dict]:
    """The harness as a host process (process, in-gvisor, unsafe-local): argv and setup."""
    prefix = () if kind in NAMESPACELESS else require_isolation("process") and namespace_prefix()
    scratch = os.path.join(workdir, "scratch")
    os.mkdir(scratch)
    for path in (workdir, scratch):  # the program's uid passes through, lists nothing
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


def runsc_launch(workdir: str) -> tuple[list[str], dict, str]:
    """A gVisor container running the harness: argv, setup and the container's id."""
    bundle = Path(workdir) / "bundle"
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
            mounts.append({"destination": f"/{name}", "type": "bind", "source": str(host), "options": ["rbind", "ro"]})
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
    container_id = f"valley-{uuid.uuid4().hex[:16]}"
    return [*runsc_base(workdir), "run", "--bundle", str(bundle), container_id], setup, container_id


def runsc_base(workdir: str) -> list[str]:
    flags = ["runsc", "--root", os.path.join(workdir, "state"), "--network=none", "--ignore-cgroups"]
    if os.geteuid() != 0:
        flags.append("--rootless")
    return flags


def runsc_command(workdir: str, *args: str) -> None:
    """A runsc subcommand on this sandbox's state (kill, delete); failures are ignored."""
    try:
        subprocess.run([*runsc_base(workdir), *args], capture_output=True, timeout=10, env=HOST_ENV)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _hide_this_process() -> None:
    """Without namespaces a program may run as the grader's own uid: then the grader's
    /proc/<pid>/environ, mem and fd must not be readable by it. A non-dumpable process's /proc
    files belong to root and it cannot be ptraced by its own uid."""
    import ctypes

    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0


_session_numbers = itertools.count()


def _worker_uid() -> int:
    """A uid no other live sandbox uses, so per-uid process limits stay per sandbox."""
    return 100_000 + (os.getpid() * 64 + next(_session_numbers) % 64) % 1_000_000
