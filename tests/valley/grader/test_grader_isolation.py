"""Issue 21's attacks, in every sandbox kind: a program must not read the host's files (answers
planted world-readable where data lives, the datasets, the project's own packaged data), reach
another program (System V IPC, host Unix sockets, what an earlier program left in memory), do
work the CPU limit does not see (helpers reaped, unreaped, double-forked), or use system calls
no program needs. The pods' mode (`in-gvisor`) runs the same battery the way the pods run it:
the grader under runsc as uid 10001 with no capabilities and a read-only root, plus the attacks
on the grader itself (its environment, descriptors and memory, its verdict file, other
programs' scratch). One batch per kind, one warm sandbox for all its probes.

Every probe prints "ok" only if its attack worked, so an escape is a pass; each must come out a
wrong answer (it ran and was refused), the CPU probe a timeout."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_tool
from tests.valley.grader import probes
from tests.valley.grader.standalone import grader_package
from valley.grader.grading import grade_batch, read_verdicts
from valley.grader.problem import Problem, TestCase

PROBE_TIMEOUT_S = 10  # the walk and the memory scan need a few seconds of CPU, mostly in gVisor
CPU_LIMIT_S = 1.0


def battery(
    marker: str, paths: list[str], dirs: list[str], sockets: list[str], burn_s: float = 0.8
) -> tuple[list[Problem], list[dict]]:
    """The problems and the probe programs, in grading order (workers=1: one warm sandbox);
    `burn_s`: see probes.UNCOUNTED_HELPERS."""
    half = len(marker) // 2
    problems = [
        Problem("probe", (TestCase("1\n", "ok\n"),), timeout_s=PROBE_TIMEOUT_S),
        Problem("marker", (TestCase("1\n", marker + "\n"),), timeout_s=PROBE_TIMEOUT_S),
        Problem("cpu", (TestCase("1\n", "ok\n"),), timeout_s=CPU_LIMIT_S),
    ]
    programs = [
        ("probe", "planted_answers", probes.fill(probes.PLANTED, PATHS=paths, MARKER=marker)),
        ("probe", "walk_for_answers", probes.fill(probes.WALK_FOR_ANSWERS, DIRS=dirs)),
        ("probe", "ipc_writer", probes.fill(probes.IPC_WRITER, MARKER=marker)),
        ("probe", "ipc_reader", probes.fill(probes.IPC_READER, MARKER=marker)),
        ("probe", "host_socket", probes.fill(probes.HOST_SOCKET, SOCKETS=sockets)),
        ("marker", "correct_sibling", f"print({marker[:half]!r} + {marker[half:]!r})\n"),
        ("marker", "memory_scan", probes.fill(probes.MEMORY_SCAN, FIRST_HALF=marker[:half], SECOND_HALF=marker[half:])),
        ("cpu", "uncounted_helpers", probes.fill(probes.UNCOUNTED_HELPERS, BURN_S=burn_s)),
        ("probe", "hide_files", probes.fill(probes.HIDE_FILES)),
        *(("probe", name, probes.fill(code)) for name, code in probes.SYSCALL_CLASSES.items()),
    ]
    generations = [
        {"question_id": question, "sample_id": name, "response": probes.response(code)}
        for question, name, code in programs
    ]
    return problems, generations


def check_battery(rows: dict, generations: list[dict]) -> None:
    verdicts = {name: row["verdict"] for (_q, name), row in rows.items()}
    assert set(verdicts) == {g["sample_id"] for g in generations}
    assert verdicts.pop("correct_sibling") == "pass"
    # on main it passed (only the reaped helper was counted); on a machine loaded past ~20 runnable
    # processes per core the wall-clock guard may end it first, also a timeout
    assert verdicts.pop("uncounted_helpers") == "timeout", rows[("cpu", "uncounted_helpers")]["tests"]
    refused = {name: verdict for name, verdict in verdicts.items() if verdict != "wrong_answer"}
    details = {name: rows[next(k for k in rows if k[1] == name)]["tests"][-1]["detail"][-300:] for name in refused}
    assert not refused, (refused, details)


def shm_segments(key: int) -> list[str]:
    listed = subprocess.run(["ipcs", "-m"], capture_output=True, text=True).stdout
    return [line for line in listed.splitlines() if line.lower().startswith(f"0x{key:08x}")]


@pytest.fixture
def marker() -> str:
    return f"valley-answer-{uuid.uuid4().hex}"


@pytest.fixture
def planted(marker, tmp_path, request):
    """Answer files planted world-readable at the host places a program might look: /, /srv, /opt,
    HOME, the repository, the grader's and its interpreter's site-packages, a datasets dir (with
    a LiveCodeBench-like problems file); all removed afterwards."""
    datasets = Path(tempfile.mkdtemp(prefix="valley-datasets-"))
    datasets.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(datasets, ignore_errors=True))
    (datasets / "lcb.jsonl").write_text(json.dumps({"question_id": "q", "private_test_cases": marker}) + "\n")
    import site
    import sysconfig

    base = {"base": sys.base_prefix, "platbase": sys.base_prefix}
    places = {"/", "/srv", "/opt", os.path.expanduser("~"), str(ROOT), str(datasets), *site.getsitepackages()}
    places.update((sysconfig.get_paths()["purelib"], sysconfig.get_paths(vars=base)["purelib"]))
    paths = []
    for place in sorted(p for p in places if os.path.isdir(p)):
        path = Path(place) / f"valley-answer-{uuid.uuid4().hex[:8]}.txt"
        path.write_text(marker)
        path.chmod(0o644)
        request.addfinalizer(lambda path=path: path.unlink(missing_ok=True))
        paths.append(str(path))
    # the project's own packaged data, where it lies in the repository
    paths += [str(p) for p in sorted((ROOT / "valley" / "data" / "sample").glob("*.jsonl"))]
    return paths, [str(datasets), str(ROOT)]


@pytest.fixture
def host_sockets(tmp_path, request):
    """Unix sockets listening at host paths (world-writable), counting connections."""
    directory = Path(tempfile.mkdtemp(prefix="valley-sockets-"))
    directory.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(directory, ignore_errors=True))
    reached: list[bytes] = []
    listeners = []
    for name in ("grader.sock", "db.sock"):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(directory / name))
        os.chmod(directory / name, 0o777)
        server.listen(8)
        listeners.append(server)

    def accept(server: socket.socket) -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            reached.append(connection.recv(100) or b"connected")
            connection.close()

    threads = [threading.Thread(target=accept, args=(s,), daemon=True) for s in listeners]
    for thread in threads:
        thread.start()
    yield [str(directory / name) for name in ("grader.sock", "db.sock")], reached
    for server in listeners:
        server.shutdown(socket.SHUT_RDWR)
        server.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("sandbox", ["process", "unsafe-local", pytest.param("runsc", marks=pytest.mark.runsc)])
def test_no_program_reaches_the_host_another_program_or_unseen_cpu(
    sandbox, marker, planted, host_sockets, tmp_path, monkeypatch, request
):
    if sandbox == "runsc":
        require_tool("runsc", "apt-get install -y runsc")
    from valley.grader.pool import POOL

    scratch_root = Path(tempfile.mkdtemp(prefix="valley-isolation-"))
    scratch_root.chmod(0o711)
    request.addfinalizer(lambda: shutil.rmtree(scratch_root, ignore_errors=True))
    request.addfinalizer(lambda: subprocess.run(["ipcrm", "-M", hex(probes.SHM_KEY)], capture_output=True))
    monkeypatch.setenv("VALLEY_GRADER_TMPDIR", str(scratch_root))
    POOL.close_all()  # a fresh sandbox under this test's scratch root serves the whole battery
    paths, dirs = planted
    sockets, reached = host_sockets
    problems, generations = battery(marker, paths, dirs, sockets, burn_s=3600 if sandbox == "runsc" else 0.8)
    out = tmp_path / "verdicts.jsonl"
    grade_batch(problems, generations, out, sandbox=sandbox, workers=1, progress=False)
    POOL.close_all()
    check_battery(read_verdicts(out), generations)
    assert reached == []
    assert shm_segments(probes.SHM_KEY) == []  # nothing a program made outlives its grading


@pytest.mark.slow
@pytest.mark.runsc
@pytest.mark.timeout(600)
def test_the_pods_mode_holds_under_gvisor_as_the_pods_run_it(marker, tmp_path):
    """`--sandbox in-gvisor` as the rendered grader container runs it: under runsc, uid 10001, no
    capabilities, no privilege escalation, a read-only root, a writable /tmp, the grader's
    image files only. The battery plus the attacks on the grader: its environment (a planted
    secret), its file descriptors and memory through /proc, a forged passing row appended to
    its verdict file, the scratch of other programs."""
    runsc = require_tool("runsc", "apt-get install -y runsc")
    secret = f"valley-planted-{uuid.uuid4().hex}"
    bundle = tmp_path / "bundle"
    rootfs = bundle / "rootfs"
    package = grader_package(tmp_path / "image")
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    (datasets / "lcb.jsonl").write_text(json.dumps({"question_id": "q", "private_test_cases": marker}) + "\n")
    for place in ("srv", "opt", "datasets", "work", "usr", "etc", "tmp", "proc", "dev"):
        (rootfs / place).mkdir(parents=True, exist_ok=True)
    for name in ("bin", "lib", "lib64", "sbin"):
        if Path("/", name).is_symlink():
            (rootfs / name).symlink_to(os.readlink(Path("/", name)))
    paths = ["/valley-answer.txt", "/srv/valley-answer.txt", "/opt/valley-answer.txt", "/work/valley/valley-answer.txt"]
    for path in paths[:3]:
        (rootfs / path.lstrip("/")).write_text(marker)
    (package / "valley-answer.txt").write_text(marker)
    paths += ["/tmp/valley-answer.txt", "/datasets/lcb.jsonl"]  # HOME is /tmp: planted from inside
    problems, generations = battery(marker, paths, ["/datasets", "/work"], [])
    for name, code in probes.POD_PROBES.items():
        generations.append(
            {"question_id": "probe", "sample_id": name, "response": probes.response(probes.fill(code, SECRET=secret))}
        )
    (datasets / "problems.jsonl").write_text("".join(json.dumps(p.to_dict()) + "\n" for p in problems))
    (datasets / "generations.jsonl").write_text("".join(json.dumps(g) + "\n" for g in generations))
    for path in [tmp_path, package, *package.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    grade = [
        "/usr/bin/python3",
        "-m",
        "valley.grader",
        "grade",
        "--problems",
        "/datasets/problems.jsonl",
        "--generations",
        "/datasets/generations.jsonl",
        "--out",
        "/tmp/verdicts.jsonl",
        "--sandbox",
        "in-gvisor",
        "--workers",
        "1",
    ]
    script = (
        f"echo {shlex.quote(marker)} > /tmp/valley-answer.txt && {' '.join(map(shlex.quote, grade))} >&2;"
        " status=$?; cat /tmp/verdicts.jsonl; echo left: /tmp/valley-grade-* >&2; exit $status"
    )
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
        {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]},
        {"destination": "/etc", "type": "bind", "source": "/etc", "options": ["rbind", "ro"]},
        {"destination": "/work/valley", "type": "bind", "source": str(package), "options": ["rbind", "ro"]},
        {"destination": "/datasets", "type": "bind", "source": str(datasets), "options": ["rbind", "ro"]},
    ]
    for mount in mounts:
        (rootfs / mount["destination"].lstrip("/")).mkdir(parents=True, exist_ok=True)
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 10001, "gid": 10001},
            "args": ["/bin/sh", "-c", script],
            "env": [
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "HOME=/tmp",
                "PYTHONPATH=/work/valley",
                "PYTHONDONTWRITEBYTECODE=1",
                f"VALLEY_PLANTED_SECRET={secret}",
            ],
            "cwd": "/tmp",
            "noNewPrivileges": True,
            "capabilities": {key: [] for key in ("bounding", "effective", "permitted", "inheritable", "ambient")},
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "grader",
        "mounts": mounts,
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]},
    }
    (bundle / "config.json").write_text(json.dumps(config))
    state = tmp_path / "state"
    result = subprocess.run(
        [runsc, "--root", str(state), "--network=none", "--ignore-cgroups", "run", "--bundle", str(bundle), "pod"],
        capture_output=True,
        text=True,
        timeout=540,
    )
    subprocess.run([runsc, "--root", str(state), "delete", "--force", "pod"], capture_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "left: /tmp/valley-grade-*" in result.stderr  # the glob matched nothing: every sandbox dir removed
    lines = result.stdout.splitlines()
    assert len(lines) == len(generations), "a row was forged or lost"  # one row per program, no more
    out = tmp_path / "verdicts.jsonl"
    out.write_text(result.stdout)
    rows = read_verdicts(out)
    assert {row["sandbox"] for row in rows.values()} == {"in-gvisor"}
    check_battery(rows, generations)
