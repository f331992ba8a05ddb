"""Attacking programs for the isolation tests (issue 21's classes), each printing "ok" only if its
attack worked: graded against an expected output of "ok", an escape shows up as a pass, and a
refused attack as a wrong answer (never a crash: every probe catches its own failures, so a
runtime error means the probe did not run and tells nothing).

Placeholders the tests fill in: MARKER (random text of this run), PATHS (planted answer files),
SOCKETS (Unix sockets the test listens on), SECRET (an environment value of the grader's)."""

from __future__ import annotations

import textwrap

# ---- reading the host: planted answers, the datasets, the project's own packaged data

PLANTED = """
found = []
for path in PATHS:
    try:
        with open(path) as handle:
            found.append(MARKER in handle.read())
    except OSError:
        pass
print("ok" if any(found) else "no")
"""

# the attack the issue saw: walk the disk for problem files and read the private tests in them
# (the places such files live first, then everything)
WALK_FOR_ANSWERS = """
import itertools, os, time
end = time.monotonic() + 3
hit = False
for root, dirs, files in itertools.chain(*(os.walk(top) for top in DIRS + ["/"])):
    dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    for name in files:
        if name.endswith(".jsonl"):
            try:
                with open(os.path.join(root, name)) as handle:
                    hit = hit or "private_test_cases" in handle.read(1 << 20)
            except OSError:
                pass
    if hit or time.monotonic() > end:
        break
print("ok" if hit else "no")
"""

# ---- channels between programs

SHM_KEY = 0x56414C4C
IPC_WRITER = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
segment = libc.shmget({SHM_KEY}, 4096, 0o1666)  # IPC_CREAT, readable and writable by anyone
if segment >= 0:
    address = libc.shmat(segment, None, 0)
    if address not in (None, ctypes.c_void_p(-1).value):
        ctypes.memmove(address, MARKER.encode(), len(MARKER))
print("no")
"""
IPC_READER = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
segment = libc.shmget({SHM_KEY}, 4096, 0)
found = False
if segment >= 0:
    address = libc.shmat(segment, None, 0o10000)  # SHM_RDONLY
    if address not in (None, ctypes.c_void_p(-1).value):
        found = ctypes.string_at(address, len(MARKER)).decode(errors="replace") == MARKER
print("ok" if found else "no")
"""

HOST_SOCKET = """
import socket
reached = False
for path in SOCKETS:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(2)
            client.connect(path)
            client.sendall(b"escaped")
            reached = True
    except OSError:
        pass
print("ok" if reached else "no")
"""

# a correct program prints the marker (the expected output); graded next in the same warm
# sandbox, this one looks for it in its own memory: everything mapped readable, found through
# /proc/self/maps where that exists, else around the heap's break and its own objects (probed
# through write(2), which fails with EFAULT on an unmapped page instead of crashing). It holds
# the marker only as two halves, never side by side, so it cannot find its own copy.
MEMORY_SCAN = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.sbrk.restype = ctypes.c_void_p
first, second = FIRST_HALF.encode(), SECOND_HALF.encode()
regions = []
try:
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, perms = line.split()[:2]
            if perms.startswith("r"):
                start, end = (int(part, 16) for part in span.split("-"))
                regions.append((start, end))
except OSError:
    for anchor in [libc.sbrk(0)] + [id(o) for o in (regions, first, libc, os, ctypes)]:
        base = (anchor >> 12) << 12
        regions.append((max(base - (64 << 20), 4096), base + (8 << 20)))
read_end, write_end = os.pipe()
seen, found = set(), ""
for start, end in regions:
    for page in range(start, end, 4096):
        if found or page in seen:
            continue
        seen.add(page)
        if libc.write(write_end, ctypes.c_void_p(page), 1) != 1:
            continue
        os.read(read_end, 1)
        chunk = ctypes.string_at(page, 4096)
        at = chunk.find(first)
        while at >= 0 and not found:
            if page + at + len(first) + len(second) <= end:
                if ctypes.string_at(page + at + len(first), len(second)) == second:
                    found = (first + second).decode()
            at = chunk.find(first, at + 1)
print(found or "no")
"""

# ---- CPU: helpers a program starts, reaped, left running unreaped, and double-forked, each
# burning CPU time of its own (0.1, BURN_S, BURN_S seconds) while the program itself only waits:
# counted together they pass the 1 s limit (a timeout on the CPU limit); with either of the big
# two missed, what is counted stays under it and the program passes. BURN_S is 0.8 where the
# helpers' clock is the one the limit is judged on (process, unsafe-local, in-gvisor); under
# runsc the limit is judged on the host's clock while the helpers read gVisor's, which runs ahead
# of it on a busy host, so there they burn until killed (and the program waits for ever).
UNCOUNTED_HELPERS = """
import os, time
def work(seconds, report=None):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    if report is not None:
        os.write(report, b"x")
        time.sleep(60)
    os._exit(0)
done_r, done_w = os.pipe()
reaped = os.fork()
if reaped == 0:
    work(0.1)
os.waitpid(reaped, 0)
if os.fork() == 0:  # never reaped: still alive when the program ends
    work(BURN_S, done_w)
middle = os.fork()
if middle == 0:  # double-forked: its child is nobody's child here
    if os.fork() == 0:
        work(BURN_S, done_w)
    os._exit(0)
os.waitpid(middle, 0)
os.read(done_r, 1)
os.read(done_r, 1)
print("ok")
"""

# ---- system calls no program needs, one class each: "ok" when any call of the class succeeded
SYSCALL_CLASSES = {
    "io_uring": """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
print("ok" if libc.syscall(425, 8, params) >= 0 else "no")  # io_uring_setup
""",
    "userfaultfd": """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print("ok" if max(libc.syscall(323, flags) for flags in (0, 1)) >= 0 else "no")  # 1: UFFD_USER_MODE_ONLY
""",
    "bpf": """
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
attr = ctypes.create_string_buffer(struct.pack("<IIII", 2, 4, 4, 1), 128)  # BPF_MAP_CREATE: an array map
print("ok" if libc.syscall(321, 0, attr, 128) >= 0 else "no")
""",
    "perf_event_open": """
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
# PERF_TYPE_SOFTWARE, size 112, PERF_COUNT_SW_TASK_CLOCK, exclude_kernel | exclude_hv
attr = ctypes.create_string_buffer(struct.pack("<IIQQQQQ", 1, 112, 1, 0, 0, 0, 0b1100000), 112)
print("ok" if libc.syscall(298, attr, 0, -1, -1, 0) >= 0 else "no")
""",
    "file_handles": """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
handle = ctypes.create_string_buffer(128 + 8)
ctypes.memmove(handle, (128).to_bytes(4, "little"), 4)
mount_id = ctypes.c_int()
named = libc.syscall(303, -100, b".", handle, ctypes.byref(mount_id), 0)  # name_to_handle_at
opened = libc.syscall(304, os.open(".", os.O_RDONLY), handle, 0)  # open_by_handle_at
print("ok" if named >= 0 or opened >= 0 else "no")
""",
    "namespaces": """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
worked = [libc.unshare(flag) == 0 for flag in (0x10000000, 0x20000, 0x40000000, 0x08000000, 0x20000000)]
for path in ("/proc/1/ns/mnt", "/proc/1/ns/net", "/proc/1/ns/user"):
    try:
        worked.append(libc.setns(os.open(path, os.O_RDONLY), 0) == 0)
    except OSError:
        pass
pid = libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)  # clone(CLONE_NEWUSER | SIGCHLD)
if pid == 0:
    os._exit(0)
worked.append(pid > 0)
print("ok" if any(worked) else "no")
""",
    "keyrings": """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
added = libc.syscall(248, b"user", b"valley", b"secret", 6, -2)  # add_key into the user keyring
asked = libc.syscall(250, 0, -2, 0)  # keyctl(KEYCTL_GET_KEYRING_ID, user keyring, no create)
print("ok" if added >= 0 or asked >= 0 else "no")
""",
    "mount_in_a_user_namespace": """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
mounted = False
if libc.unshare(0x10000000 | 0x20000) == 0:  # CLONE_NEWUSER | CLONE_NEWNS
    os.makedirs("m", exist_ok=True)
    mounted = libc.mount(b"none", b"m", b"tmpfs", 0, None) == 0
print("ok" if mounted else "no")
""",
}

# ---- the pods' mode: what a program must not reach of the grader and its harness

GRADER_ENVIRON = """
import glob, os
seen = []
for path in ["/proc/1/environ", f"/proc/{os.getppid()}/environ"] + glob.glob("/proc/*/environ"):
    try:
        with open(path, "rb") as handle:
            seen.append(handle.read().decode(errors="replace"))
    except OSError:
        pass
print("ok" if any(SECRET in text for text in seen) else "no")
"""
GRADER_FDS = """
import glob, os
listed = []
for path in ["/proc/1/fd", f"/proc/{os.getppid()}/fd"] + glob.glob("/proc/[0-9]*/fd"):
    try:
        if not path.startswith(f"/proc/{os.getpid()}/") and os.listdir(path):
            listed.append(path)
    except OSError:
        pass
print("ok" if listed else "no")
"""
GRADER_MEMORY = """
import glob, os
read = False
for path in ["/proc/1/mem", f"/proc/{os.getppid()}/mem"] + glob.glob("/proc/[0-9]*/mem"):
    if path.startswith(f"/proc/{os.getpid()}/"):
        continue
    try:
        with open(path, "rb") as handle:
            handle.seek(0x400000)
            read = read or bool(handle.read(16))
    except (OSError, ValueError, OverflowError):
        pass
print("ok" if read else "no")
"""
# re-open the grader's verdict file (or any other fd of the grader's and the harness's, pipes
# included) through /proc and append a passing row for itself
FORGE_VERDICT = """
import glob, json, os
forged = False
row = {"question_id": "forge_verdict", "sample_id": "forge_verdict", "passed": True, "verdict": "pass",
       "total_tests": 1, "sandbox": "in-gvisor", "detail": "", "tests": []}
for path in glob.glob("/proc/[0-9]*/fd/*"):
    if path.startswith(f"/proc/{os.getpid()}/"):
        continue
    try:
        with open(path, "a") as handle:
            handle.write(json.dumps(row) + "\\n")
            forged = True
    except OSError:
        pass
print("ok" if forged else "no")
"""
OTHER_SCRATCH = """
import glob, os
found = []
for path in glob.glob("/tmp/valley-grade-*/**", recursive=True) + glob.glob("/proc/[0-9]*/cwd/**", recursive=True):
    try:
        if os.path.isfile(path) and not path.startswith(os.getcwd()):
            open(path, "rb").read(1)
            found.append(path)
    except OSError:
        pass
print("ok" if found else "no")
"""
POD_PROBES = {
    "grader_environ": GRADER_ENVIRON,
    "grader_fds": GRADER_FDS,
    "grader_memory": GRADER_MEMORY,
    "forge_verdict": FORGE_VERDICT,
    "other_scratch": OTHER_SCRATCH,
}


def fill(code: str, **values: object) -> str:
    for name, value in values.items():
        code = code.replace(name, repr(value))
    return textwrap.dedent(code).strip() + "\n"


def response(code: str) -> str:
    return f"```python\n{code}```"


# ---- hiding from the disk watch and the cleanup: a directory its owner can write but not list
HIDE_FILES = """
import os
os.makedirs("hidden/deeper")
with open("hidden/deeper/kept", "wb") as handle:
    handle.write(b"x" * (1 << 20))
os.chmod("hidden/deeper", 0)
os.chmod("hidden", 0o300)
print("no")
"""
HIDDEN_DISK_FILLER = """
import os
os.mkdir("hidden")
os.chmod("hidden", 0o300)
for i in range(6):
    with open(f"hidden/fill{i}", "wb") as handle:
        handle.write(b"x" * (8 << 20))
print("ok")
"""
