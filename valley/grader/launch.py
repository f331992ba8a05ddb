"""Launching the harness (valley/grader/harness.py) in each sandbox kind: the command line and
the harness's setup message, followed by the standard library image its test children import
from (they run chrooted into their own empty directory: harness.py's docstring).

* `runsc`: a gVisor container from an OCI bundle built per sandbox. Its root holds only the
  harness, the interpreter, the shared libraries it and the standard library's extension
  modules load, and the standard library (an empty, read-only site-packages over the real one);
  a size-capped tmpfs /scratch; no network (`--network=none`), no host environment.
* `process`: the harness as a host process in its own user (when not root), PID, network, IPC
  and mount namespaces (`unshare`), a size-capped tmpfs over its scratch directory, a scrubbed
  environment, its own session.
* `in-gvisor`: the same inside the grader's gVisor pod, without the mount namespace gVisor
  refuses there (the test children's chroot is what hides the file system).
* `unsafe-local`: the same process without any namespace.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import marshal
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from pathlib import Path

from valley.grader.harness import DEFAULT_LIMITS, UNLOADED_EXTENSIONS
from valley.grader.isolation import HOST_ENV, SHARED_UID_KINDS, namespace_prefix, require_isolation

HARNESS = Path(__file__).with_name("harness.py")
UNPRIVILEGED_UID = 65534
# the harness needs these to hand each test a directory, put the program in its own PID and IPC
# namespaces (CAP_SYS_ADMIN, inside gVisor), chroot it and drop to UNPRIVILEGED_UID; the program
# itself runs with none
CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_KILL",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_SYS_CHROOT",
    "CAP_SYS_ADMIN",
]
# parts of the standard library no program needs: its tests, GUIs, installers, and any
# packages installed into it
STDLIB_LEFT_OUT = {
    "site-packages",
    "dist-packages",
    "test",
    "tests",
    "idle_test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "pydoc_data",
    "__pycache__",
    "lib-dynload",
}


def scratch_root() -> str:
    return os.environ.get("VALLEY_GRADER_TMPDIR") or tempfile.gettempdir()


def interpreter() -> str:
    """The base interpreter (not a venv's): it runs with -I -S and needs only the stdlib."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def stdlib_dir() -> str:
    return os.path.realpath(sysconfig.get_paths()["stdlib"])


def process_launch(kind: str, workdir: str) -> tuple[list[str], dict]:
    """The harness as a host process (process, in-gvisor, unsafe-local): argv and setup."""
    prefix = () if kind == "unsafe-local" else require_isolation(kind) and namespace_prefix(kind)
    scratch = os.path.join(workdir, "scratch")
    os.mkdir(scratch)
    for path in (workdir, scratch):  # the program's uid passes through, lists nothing
        os.chmod(path, 0o711)
    if kind in SHARED_UID_KINDS:
        _hide_this_process()
    setup = {
        "scratch": scratch,
        "uid": _worker_uid(),
        "scratch_tmpfs": kind == "process",  # the only kind with a mount namespace of its own
        "watch_disk": kind != "process",
        "program_namespaces": kind != "unsafe-local",
    }
    return [*prefix, interpreter(), "-I", "-S", str(HARNESS)], setup


def runsc_launch(workdir: str) -> tuple[list[str], dict, str]:
    """A gVisor container running the harness: argv, setup and the container's id."""
    bundle = Path(workdir) / "bundle"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    for name in ("harness.py", "confine.py"):  # the harness imports confine.py from its own directory
        shutil.copy(HARNESS.with_name(name), rootfs / name)
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/scratch",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=755", f"size={DEFAULT_LIMITS['scratch_mb']}m"],
        },
    ]
    for name in ("bin", "lib", "lib64", "sbin"):  # merged /usr: the loader's paths go through these links
        if (Path("/") / name).is_symlink():
            (rootfs / name).symlink_to(os.readlink(Path("/") / name))
    for host, inside in interpreter_files():
        mounts.append({"destination": inside, "type": "bind", "source": host, "options": ["bind", "ro"]})
        (rootfs / inside.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / inside.lstrip("/")).touch()
    stdlib = stdlib_dir()
    mounts.append({"destination": stdlib, "type": "bind", "source": stdlib, "options": ["rbind", "ro"]})
    for name in ("site-packages", "dist-packages"):  # what is installed into the stdlib stays out
        if os.path.isdir(os.path.join(stdlib, name)):
            mounts.append(
                {"destination": f"{stdlib}/{name}", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "size=4k"]}
            )
    for mount in mounts:
        if mount["type"] != "bind" or mount["options"][0] == "rbind":
            (rootfs / mount["destination"].lstrip("/")).mkdir(parents=True, exist_ok=True)
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": [interpreter(), "-I", "-S", "/harness.py"],
            "env": [f"{k}={v}" for k, v in HOST_ENV.items()],
            "cwd": "/scratch",
            "noNewPrivileges": True,
            "capabilities": {key: CAPABILITIES for key in ("bounding", "effective", "permitted")},
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "sandbox",
        "mounts": mounts,
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]},
    }
    (bundle / "config.json").write_text(json.dumps(config))
    setup = {"scratch": "/scratch", "uid": UNPRIVILEGED_UID, "watch_disk": False, "program_namespaces": True}
    container_id = f"valley-{uuid.uuid4().hex[:16]}"
    return [*runsc_base(workdir), "run", "--bundle", str(bundle), container_id], setup, container_id


@functools.lru_cache(maxsize=1)
def interpreter_files() -> tuple[tuple[str, str], ...]:
    """(host file, path inside the sandbox) for the interpreter and every shared library it and
    the standard library's extension modules load (as `ldd` resolves them): all a runsc
    sandbox's harness needs besides the standard library."""
    dynload = Path(stdlib_dir()) / "lib-dynload"
    modules = [str(p) for p in sorted(dynload.glob("*.so")) if p.name.split(".", 1)[0] not in UNLOADED_EXTENSIONS]
    listed = subprocess.run(["ldd", interpreter(), *modules], capture_output=True, text=True, env=HOST_ENV).stdout
    libraries = set()
    for line in listed.splitlines():
        words = line.split()
        path = words[2] if len(words) >= 3 and words[1] == "=>" else words[0] if words and words[0][:1] == "/" else ""
        if path.startswith("/") and not path.endswith(":"):
            libraries.add(path)
    files = {interpreter(): interpreter()}
    for path in libraries:  # mounted where the loader looks, below the real directory (not a symlink to it)
        files[os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))] = os.path.realpath(path)
    return tuple(sorted((host, inside) for inside, host in files.items()))


@functools.lru_cache(maxsize=1)
def stdlib_image() -> bytes:
    """The compiled standard library the test children import from after their chroot:
    marshal of (magic number, {module name: (is package, file name, marshalled code)}), built
    once per grader process (~11 MB) and sent to each sandbox as it starts."""
    root = stdlib_dir()
    modules = {}
    for directory, subdirs, files in os.walk(root):
        package = [] if directory == root else os.path.relpath(directory, root).split(os.sep)
        if package and "__init__.py" not in files:
            subdirs[:] = []
            continue
        subdirs[:] = sorted(d for d in subdirs if d not in STDLIB_LEFT_OUT and not d.startswith("config-"))
        for name in sorted(files):
            stem, extension = os.path.splitext(name)
            if extension != ".py":
                continue
            parts = package if stem == "__init__" else [*package, stem]
            if not parts or not all(part.isidentifier() for part in parts):
                continue
            path = os.path.join(directory, name)
            modules[".".join(parts)] = (stem == "__init__", path, _compiled(path))
    return marshal.dumps((importlib.util.MAGIC_NUMBER, modules))


def _compiled(path: str) -> bytes:
    """The marshalled code of a module: its up-to-date .pyc's, else compiled here."""
    source = os.stat(path)
    try:
        with open(importlib.util.cache_from_source(path), "rb") as handle:
            header, code = handle.read(16), handle.read()
        fresh = (
            header[:4] == importlib.util.MAGIC_NUMBER
            and int.from_bytes(header[4:8], "little") == 0
            and int.from_bytes(header[8:12], "little") == int(source.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(header[12:16], "little") == source.st_size & 0xFFFFFFFF
        )
        if fresh:
            return code
    except OSError:
        pass
    with open(path, "rb") as handle:
        return marshal.dumps(compile(handle.read(), path, "exec", dont_inherit=True))


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
