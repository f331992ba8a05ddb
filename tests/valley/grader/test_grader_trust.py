"""Grader trust: whatever a program returns or writes, it gets exactly one verdict of its own;
it cannot reach the result channel, use a foreign syscall entry, or change another program's
verdict; and the grader refuses to run without the isolation it was asked for."""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from tests.conftest import grader_cli_entry, python_as_nobody, require_tool, require_uid_switch
from tests.valley.grader.standalone import grader_package
from valley.grader import confine, harness
from valley.grader.grading import grade_batch, grade_code, read_verdicts
from valley.grader.problem import Problem, TestCase
from valley.grader.values import Opaque, decode_reply
from valley.grader.verdict import TEST_STATUSES, judge_test

ROOT = Path(__file__).resolve().parents[3]
SEED = 20261204


# ---- 1. every value a program produces gets a verdict


class _Hostile:
    """Every dunder a comparison, hash or message could call raises."""

    def __eq__(self, other):
        raise RuntimeError("hostile __eq__")

    def __hash__(self):
        raise RuntimeError("hostile __hash__")

    def __repr__(self):
        raise RuntimeError("hostile __repr__")


class _HashableHostile(_Hostile):
    def __hash__(self):
        return 7


def _deep(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


def _values(rng: random.Random, depth: int = 0, hashable: bool = False):
    """A random Python value of the kinds programs return, nested up to a few levels."""
    leaves = [
        lambda: rng.randint(-10, 10),
        lambda: 10 ** rng.choice([18, 400, 5000]) * rng.choice([1, -1]),
        lambda: rng.choice([0.5, float("nan"), float("inf"), -0.0, 1e308]),
        lambda: rng.choice(["", "ok", "\x00\ud800"]),
        lambda: None,
        lambda: rng.random() < 0.5,
        lambda: b"\xff\x00",
        lambda: Fraction(rng.randint(1, 9), rng.randint(1, 9)),
        lambda: rng.choice([Decimal("0.5"), Decimal("NaN"), Decimal("sNaN"), Decimal("1e999999")]),
        lambda: complex(1, 2),
        lambda: _HashableHostile(),
        lambda: frozenset({1, (2, 3)}),
    ]
    if not hashable:
        leaves += [
            lambda: _Hostile(),
            lambda: (i for i in range(3)),
            lambda: range(3),
            lambda: object(),
            lambda: _deep(300),
        ]
    if depth >= 3 or rng.random() < 0.4:
        return rng.choice(leaves)()
    kind = rng.choice(["list", "tuple", "set", "frozenset", "dict"] if not hashable else ["tuple", "frozenset"])
    items = [
        _values(rng, depth + 1, hashable=hashable or kind in ("set", "frozenset")) for _ in range(rng.randint(0, 3))
    ]
    if kind == "list":
        return items
    if kind == "tuple":
        return tuple(items)
    if kind in ("set", "frozenset"):
        try:
            return (set if kind == "set" else frozenset)(items)
        except Exception:
            return frozenset()
    try:
        return {_values(rng, depth + 1, hashable=True): value for value in items}
    except TypeError:  # Decimal('sNaN') cannot be hashed
        return {}


def _forged_channel(rng: random.Random) -> str:
    """What a program could leave in the value channel instead of an encoded value."""
    choices = [
        lambda: "",
        lambda: "x",
        lambda: "{",
        lambda: '{"set": [[1]]}',
        lambda: '{"set": [{"dict": []}]}',
        lambda: '{"dict": [[[1], 2]]}',
        lambda: '{"int": "' + "9" * 5000 + '"}',
        lambda: '{"float": "spam"}',
        lambda: '{"a": 1, "b": 2}',
        lambda: "{}",
        lambda: '{"fraction": [1, 0]}',
        lambda: '{"decimal": "sNaN"}',
        lambda: "[" * 100_000 + "]" * 100_000,
        lambda: '{"tuple": 5}',
        lambda: '{"dict": [[1]]}',
        lambda: "NaN",
        lambda: json.dumps(harness.encode_value([1, 2])) + "garbage",
        lambda: '{"opaque": {"x": 1}}',
        lambda: '{"int": "0x' + "f" * 20 + '"}',
        lambda: '{"set": ' + "[" * 3000 + "]" * 3000 + "}",
    ]
    return rng.choice(choices)()


def _judge_raw(raw: dict, expected: str) -> str:
    for judge in ("lcb", "taco"):
        status, detail = judge_test(judge, "functional", raw, expected)
        assert status in TEST_STATUSES and isinstance(detail, str)
    return status


def _channel(text: str | None) -> dict:
    """The harness's reply for a child that left `text` in its value channel (None: its value
    could not be encoded, which the harness reports as the program's runtime error)."""
    if text is None:
        return {"status": "runtime_error", "stderr": harness.UNSERIALISABLE}
    return {"status": "exited", "value_json": text, "stderr": ""}


def test_fuzzed_return_values_and_forged_channels_always_get_one_verdict():
    rng = random.Random(SEED)
    seen = set()
    for _ in range(600):
        value = _values(rng)
        seen.add(_judge_raw(_channel(harness.encode_result(value)), rng.choice(["[1, 2]", "0.5", "{}", "null"])))
    for _ in range(300):
        _judge_raw(_channel(_forged_channel(rng)), "[1, 2]")
    assert {"runtime_error", "wrong_answer"} <= seen


def test_values_keep_the_equality_lcb_sees():
    """Decoded values compare with the expected JSON as the program's own values would; sets and
    dicts with non-string keys, which equal no JSON value, decode to values equal to nothing."""
    for value, expected in [
        ({frozenset([1, 2])}, "[[1, 2]]"),
        ({Fraction(1, 2)}, "[0.5]"),
        ({1: 2}, '{"1": 2}'),
        (Fraction(1, 2), "0.5"),
        (Decimal("2.5"), "2.5"),
        (10**5000, "1"),
        (-(10**20), str(-(10**20))),
        ((1, (2, 3)), "[1, [2, 3]]"),
        ((1, 2), "[1, 2]"),
        ({"a": (1, 2)}, '{"a": [1, 2]}'),
    ]:
        status, decoded, _why = decode_reply(harness.encode_result(value), expected)
        assert status == "exited"
        if isinstance(value, (set, dict)) and not all(isinstance(key, str) for key in value):
            assert isinstance(decoded, Opaque) and value != json.loads(expected)
        elif value != 10**5000:
            assert decoded == value
        # LCB turns only a top-level tuple into a list: nested tuples never equal a list
        equal = value not in ((1, (2, 3)), {"a": (1, 2)}) and value == json.loads(expected)
        assert judge_test("lcb", "functional", _channel(harness.encode_result(value)), expected)[0] == (
            "pass" if equal or isinstance(value, tuple) and list(value) == json.loads(expected) else "wrong_answer"
        )


FUNCTIONAL = Problem("f", (TestCase("1", "1"), TestCase("2", "2")), fn_name="f", timeout_s=3)
STDIN = Problem("s", (TestCase("1\n", "ok\n"),), timeout_s=3)
RETURNS = {
    "set_of_frozensets": "return {frozenset([x, 2])}",
    "set_of_fractions": "from fractions import Fraction\n    return {Fraction(1, 2)}",
    "huge_int": "return 10 ** 5000",
    "deep": "v = []\n    for _ in range(100000):\n        v = [v]\n    return v",
    "generator": "return (i for i in range(x))",
    "bytes": "return b'\\xff'",
    "decimal_snan": "from decimal import Decimal\n    return Decimal('sNaN')",
    "hostile_object": (
        "class H:\n        __eq__ = lambda s, o: 1 / 0\n        __hash__ = lambda s: 1 / 0\n"
        "        __repr__ = lambda s: 1 / 0\n    return H()"
    ),
    "hostile_int_subclass": (
        "class I(int):\n        __abs__ = lambda s: 1 / 0\n        __repr__ = lambda s: 1 / 0\n    return I(1)"
    ),
    "dict_subclass": "class D(dict):\n        items = lambda s: 1 / 0\n    return D(a=1)",
    "forge_channel_then_return": "import os\n    os.write(3, b'{\"set\": [[1]]}')\n    return x + 1",
    "garbage_channel_then_exit": "import os\n    os.write(3, b'{\"bad')\n    os._exit(0)",
    "correct": "return x",
}
STDIN_PROGRAMS = {
    "write_every_fd": (
        "import os\nfor fd in range(0, 256):\n    try:\n"
        '        os.write(fd, b\'{"status": "exited", "stdout": "ok"}\\n\')\n    except OSError:\n        pass\n'
        "print('no')"
    ),
    "correct": "input()\nprint('ok')",
}


def test_hostile_return_values_each_get_their_own_verdict_never_an_infra_error(tmp_path):
    generations = [
        {"question_id": "f", "sample_id": name, "response": f"```python\ndef f(x):\n    {body}\n```"}
        for name, body in RETURNS.items()
    ]
    generations += [
        {"question_id": "s", "sample_id": name, "response": f"```python\n{code}\n```"}
        for name, code in STDIN_PROGRAMS.items()
    ]
    out = tmp_path / "verdicts.jsonl"
    grade_batch([FUNCTIONAL, STDIN], generations, out, sandbox="process", workers=2, progress=False)
    rows = read_verdicts(out)
    assert len(out.read_text().splitlines()) == len(generations) == len(rows)
    verdicts = {key[1] if key[0] == "f" else f"stdin:{key[1]}": row["verdict"] for key, row in rows.items()}
    assert verdicts.pop("correct") == "pass" and verdicts.pop("stdin:correct") == "pass"
    assert all(v in ("wrong_answer", "runtime_error") for v in verdicts.values()), verdicts
    assert verdicts["forge_channel_then_return"] == "wrong_answer"  # its own return value counts, not the forgery
    assert verdicts["garbage_channel_then_exit"] == "runtime_error"
    assert "channel" in rows[("f", "garbage_channel_then_exit")]["tests"][-1]["detail"]


# ---- 3. no syscall from a foreign architecture or the x32 range

I386_SOCKET = textwrap.dedent("""
    import ctypes, mmap, struct, socket
    # push rbx; mov eax, 102 (socketcall); mov ebx, 1 (SYS_SOCKET); mov ecx, args; int 0x80; pop rbx; ret
    page = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x40,  # MAP_32BIT
                     prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    base = ctypes.addressof(ctypes.c_char.from_buffer(page))
    code = b"\\x53\\xb8" + struct.pack("<I", 102) + b"\\xbb" + struct.pack("<I", 1)
    code += b"\\xb9" + struct.pack("<I", base + 256) + b"\\xcd\\x80\\x5b\\xc3"
    page[:len(code)] = code
    page[256:268] = struct.pack("<III", socket.AF_INET, socket.SOCK_STREAM, 0)
    fd = ctypes.CFUNCTYPE(ctypes.c_int)(base)()
    import os, stat  # gVisor runs `int 0x80` as a 64-bit call (102: getuid): only a real socket counts
    print("ok" if fd >= 0 and stat.S_ISSOCK(os.fstat(fd).st_mode) else "no")
""")
X32_SOCKET = textwrap.dedent("""
    import ctypes, socket
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(0x40000000 | 41, socket.AF_INET, socket.SOCK_STREAM, 0)  # __X32_SYSCALL_BIT | socket
    import os, stat  # gVisor runs `int 0x80` as a 64-bit call (102: getuid): only a real socket counts
    print("ok" if fd >= 0 and stat.S_ISSOCK(os.fstat(fd).st_mode) else "no")
""")


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the i386 and x32 entries exist on x86-64 only")
@pytest.mark.parametrize("sandbox", ["process", "unsafe-local"])
def test_i386_and_x32_syscall_entries_are_refused(sandbox):
    for code in (I386_SOCKET, X32_SOCKET):
        verdict = grade_code(STDIN, code, sandbox=sandbox)
        assert verdict.status in ("wrong_answer", "runtime_error"), (code, verdict)


def test_the_filter_refuses_foreign_architectures_and_the_x32_range():
    """The BPF program itself, run by the kernel's rules: foreign arch and x32 numbers never pass,
    signals only to itself, sockets only Unix ones, clone only without namespace flags, clone3
    unknown (ENOSYS: the C library falls back to clone), the denied calls refused."""
    arch = 0xC000003E
    program = confine.syscall_filter(arch, confine.SYSCALLS[arch], 1234)

    def verdict(arch: int, nr: int, arg0: int = 0) -> int:
        accumulator, pc = 0, 0
        data = {0: nr, 4: arch, 16: arg0}
        while True:
            code, jt, jf, k = program[pc]
            if code == 0x20:
                accumulator = data[k]
            elif code == 0x06:
                return k
            elif code in (0x15, 0x35, 0x45):
                taken = {0x15: accumulator == k, 0x35: accumulator >= k, 0x45: bool(accumulator & k)}[code]
                pc += jt if taken else jf
            else:
                raise AssertionError(f"unexpected BPF opcode {code:#x}")
            pc += 1

    allow, eperm = confine.SECCOMP_RET_ALLOW, confine.SECCOMP_RET_EPERM
    assert verdict(arch, 0) == allow  # read
    assert verdict(arch, 41, 2) == eperm  # socket(AF_INET)
    assert verdict(arch, 41, 1) == allow  # socket(AF_UNIX)
    assert verdict(arch, 62, 1234) == allow and verdict(arch, 62, 1) == eperm  # kill itself, not others
    assert verdict(arch, 56, 0x01200011) == allow  # clone as fork() calls it
    assert verdict(arch, 56, 0x01200011 | 0x10000000) == eperm  # clone(CLONE_NEWUSER)
    assert verdict(arch, 435) == confine.SECCOMP_RET_ENOSYS  # clone3
    for number in confine.SYSCALLS[arch]["denied"].values():
        assert verdict(arch, number) == eperm, number
    assert verdict(0x40000003, 102) != allow  # i386 socketcall
    assert verdict(0x40000003, 37) != allow  # i386 kill
    assert verdict(arch, 0x40000000 | 41, 2) != allow  # x32 socket
    assert verdict(arch, 0x40000000 | 62) != allow  # x32 kill


# ---- 4. fail closed

DENY_UNSHARE = textwrap.dedent("""
    import ctypes, os, sys
    sys.path.insert(0, {root!r})
    from valley.grader import confine
    # seccomp: unshare(2) and clone3 (which could carry namespace flags) fail with EPERM, as under
    # containerd's default profile; everything else is allowed
    ld, jeq, ret = 0x20, 0x15, 0x06
    program = [(ld, 0, 0, 4), (jeq, 1, 0, 0xC000003E), (ret, 0, 0, confine.SECCOMP_RET_ALLOW), (ld, 0, 0, 0),
               (jeq, 0, 1, 272), (ret, 0, 0, confine.SECCOMP_RET_EPERM), (jeq, 0, 1, 435),
               (ret, 0, 0, 0x00050026), (ret, 0, 0, confine.SECCOMP_RET_ALLOW)]
    filters = (confine.SockFilter * len(program))(*(confine.SockFilter(*i) for i in program))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # no_new_privs, so an unprivileged filter is allowed
    assert libc.prctl(22, 2, ctypes.byref(confine.SockFprog(len(program), filters)), 0, 0) == 0
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
""")


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the filter below uses x86-64 syscall numbers")
def test_grader_refuses_to_start_when_unshare_is_refused(tmp_path):
    wrapper = tmp_path / "deny_unshare.py"
    wrapper.write_text(DENY_UNSHARE.format(root=str(ROOT)))
    entry = [
        sys.executable,
        str(wrapper),
        "-I",
        "-c",
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); from valley.grader.__main__ import main; sys.exit(main())",
    ]
    refused = subprocess.run(
        [*entry, "serve", "--port", "0", "--sandbox", "process"], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 3  # a configuration error: the Job fails at once instead of retrying
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "unshare" in lines[0] and "--sandbox unsafe-local" in lines[0], refused.stderr
    problems, generations = tmp_path / "p.jsonl", tmp_path / "g.jsonl"
    problems.write_text(json.dumps(STDIN.to_dict()) + "\n")
    generations.write_text(
        json.dumps({"question_id": "s", "sample_id": 0, "response": "```python\nprint('ok')\n```"}) + "\n"
    )
    out = tmp_path / "v.jsonl"
    refused = subprocess.run(
        [*entry, "grade", "--problems", problems, "--generations", generations, "--out", out, "--sandbox", "process"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 3 and "--sandbox unsafe-local" in refused.stderr and not out.exists()
    degraded = subprocess.run(
        [
            *entry,
            "grade",
            "--problems",
            problems,
            "--generations",
            generations,
            "--out",
            out,
            "--sandbox",
            "unsafe-local",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert degraded.returncode == 0, degraded.stderr
    row = read_verdicts(out)[("s", "0")]
    assert row["verdict"] == "pass" and row["sandbox"] == "unsafe-local"


def test_forced_namespace_loss_refuses_process_but_not_unsafe_local(monkeypatch):
    from valley.grader import isolation

    monkeypatch.setenv("VALLEY_GRADER_NAMESPACES", "0")
    isolation._namespace_probe.cache_clear()
    try:
        with pytest.raises(isolation.IsolationUnavailable, match="unsafe-local"):
            isolation.require_isolation("process")
        assert isolation.require_isolation("unsafe-local") == "unsafe-local"
        assert grade_code(STDIN, "input()\nprint('ok')", sandbox="unsafe-local").status == "pass"
    finally:
        isolation._namespace_probe.cache_clear()


# ---- cross-program: one program attacks a concurrently graded one in the same pool

ATTACKER = textwrap.dedent("""
    import glob, os, signal, time
    me = os.getpid()
    while True:  # until the grader stops it: the victim runs meanwhile, whenever it starts
        for fd in range(0, 64):  # the result channel and every other inherited fd
            try:
                os.write(fd, b'{"status": "exited", "stdout": "0\\n"}\\n')
            except OSError:
                pass
        for path in glob.glob(SCRATCH_ROOT + "/**", recursive=True) + glob.glob("/tmp/**", recursive=True) \\
                + glob.glob("/dev/shm/*") + glob.glob("/proc/[0-9]*/cwd/*") + glob.glob("/proc/[0-9]*/fd/*"):
            try:
                if os.path.isfile(path):
                    with open(path, "r+b") as handle:
                        handle.write(b"0\\n")
                        handle.truncate()
            except OSError:
                pass
        try:
            pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
        except OSError:
            pids = list(range(1, 400))
        for pid in pids:
            if pid != me:
                for signum in (signal.SIGSTOP, signal.SIGKILL):
                    try:
                        os.kill(pid, signum)
                    except OSError:
                        pass
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        try:
            with open("/dev/shm/valley-victim", "wb") as handle:
                handle.write(b"0")
        except OSError:
            pass
        time.sleep(0.02)
""")
VICTIM = textwrap.dedent("""
    import os, time
    number = input().strip()
    with open("mine", "w") as handle:
        handle.write(number)
    time.sleep(0.8)
    with open("mine") as handle:
        assert handle.read() == number
    read_end, write_end = os.pipe()
    if os.fork() == 0:  # a helper process, as programs that fork have
        os.write(write_end, str(2 * int(number)).encode())
        os._exit(0)
    os.close(write_end)
    os.wait()
    print(os.read(read_end, 100).decode())
""")


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", ["process", "unsafe-local", pytest.param("runsc", marks=pytest.mark.runsc)])
def test_a_program_cannot_change_a_concurrently_graded_programs_verdict(tmp_path, monkeypatch, request, sandbox):
    if sandbox == "runsc":
        require_tool("runsc", "apt-get install -y runsc")
    scratch_root = Path(tempfile.mkdtemp(prefix="valley-cross-"))  # traversable by the programs' uids (tmp_path is not)
    scratch_root.chmod(0o711)
    request.addfinalizer(lambda: shutil.rmtree(scratch_root, ignore_errors=True))
    monkeypatch.setenv("VALLEY_GRADER_TMPDIR", str(scratch_root))
    from valley.grader.pool import POOL

    POOL.close_all()  # fresh sandboxes under this test's scratch root
    with POOL.session(sandbox), POOL.session(sandbox):
        pass  # two started sandboxes wait in the pool: both programs begin at once, neither waits for a start
    attack = Problem("attack", (TestCase("1\n", "1\n"),), timeout_s=4)
    victim = Problem("victim", tuple(TestCase(f"{n}\n", f"{2 * n}\n") for n in (21, 5, 7)), timeout_s=8)
    generations = [
        {
            "question_id": "attack",
            "sample_id": "attacker",
            "response": "```python\n" + ATTACKER.replace("SCRATCH_ROOT", repr(str(scratch_root))) + "```",
        },
        {"question_id": "victim", "sample_id": "victim", "response": "```python\n" + VICTIM + "```"},
    ]
    out = tmp_path / "verdicts.jsonl"
    grade_batch([attack, victim], generations, out, sandbox=sandbox, workers=2, progress=False)
    POOL.close_all()
    rows = read_verdicts(out)
    assert rows[("victim", "victim")]["verdict"] == "pass", json.dumps(rows[("victim", "victim")])
    assert rows[("victim", "victim")]["sandbox"] == sandbox
    attacker = rows[("attack", "attacker")]  # it attacked until stopped (it could import glob too)
    assert attacker["verdict"] == "timeout", json.dumps(attacker)


@pytest.mark.slow
def test_a_non_root_unsafe_local_grader_keeps_programs_apart(tmp_path):
    """Without namespaces and without root every program runs as the grader's uid: the pool then
    grades one program at a time, and the victim still passes next to the attacker."""
    system_python = require_uid_switch()
    root = Path(tempfile.mkdtemp(prefix="valley-cross-nonroot-"))
    try:
        package = grader_package(root / "pkg") / "valley"
        scratch_root = root / "sandboxes"
        scratch_root.mkdir()
        attack = Problem("attack", (TestCase("1\n", "1\n"),), timeout_s=4)
        victim = Problem("victim", tuple(TestCase(f"{n}\n", f"{2 * n}\n") for n in (21, 5, 7)), timeout_s=8)
        work = root / f"grader-{os.urandom(8).hex()}"
        work.mkdir()
        problems, generations, out = work / "problems.jsonl", work / "generations.jsonl", work / "verdicts.jsonl"
        problems.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in (attack, victim)))
        rows = [
            {
                "question_id": "attack",
                "sample_id": "attacker",
                "response": "```python\n" + ATTACKER.replace("SCRATCH_ROOT", repr(str(scratch_root))) + "```",
            },
            {"question_id": "victim", "sample_id": "victim", "response": "```python\n" + VICTIM + "```"},
        ]
        generations.write_text("".join(json.dumps(r) + "\n" for r in rows))
        subprocess.run(["chmod", "-R", "a+rwX", str(root)], check=True)
        # a program at the grader's uid can write whatever the grader can: the grader's files
        # must not be findable (here: under a directory other uids cannot list), see docs/grader.md
        root.chmod(0o711)
        result = python_as_nobody(
            system_python,
            grader_cli_entry(package.parent),
            ["grade", "--problems", problems, "--generations", generations, "--out", out]
            + ["--sandbox", "unsafe-local", "--workers", "2"],
            env={"PATH": "/usr/bin:/bin", "HOME": str(root), "VALLEY_GRADER_TMPDIR": str(scratch_root)},
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        verdicts = read_verdicts(out)
        assert verdicts[("victim", "victim")]["verdict"] == "pass", json.dumps(verdicts[("victim", "victim")])
        assert verdicts[("victim", "victim")]["sandbox"] == "unsafe-local"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_in_gvisor_is_refused_outside_gvisor():
    from valley.grader import isolation

    assert not isolation.under_gvisor()
    with pytest.raises(isolation.IsolationUnavailable, match="not running under gVisor"):
        isolation.require_isolation("in-gvisor")


@pytest.mark.slow
@pytest.mark.runsc
def test_in_gvisor_grades_under_gvisor(tmp_path):
    """The pods' mode, under a real gVisor kernel (`runsc do`): it recognises gVisor and grades."""
    runsc = require_tool("runsc", "apt-get install -y runsc")
    problems, generations, out = tmp_path / "p.jsonl", tmp_path / "g.jsonl", tmp_path / "v.jsonl"
    problems.write_text(json.dumps(STDIN.to_dict()) + "\n")
    generations.write_text(
        "".join(
            json.dumps({"question_id": "s", "sample_id": i, "response": f"```python\n{code}\n```"}) + "\n"
            for i, code in enumerate(["input()\nprint('ok')", I386_SOCKET])
        )
    )
    entry = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from valley.grader.__main__ import main; sys.exit(main())"
    grade = [
        "/usr/bin/python3",
        "-I",
        "-c",
        entry,
        "grade",
        "--problems",
        str(problems),
        "--generations",
        str(generations),
        "--out",
        str(out),
        "--sandbox",
        "in-gvisor",
        "--workers",
        "2",
    ]
    # `runsc do` keeps the sandbox's writes in an overlay: print the verdicts from inside
    script = " ".join(map(shlex.quote, grade)) + f" >&2 && cat {shlex.quote(str(out))}"
    result = subprocess.run(
        [runsc, "--network=none", "--ignore-cgroups", "do", "/bin/sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out.write_text(result.stdout)
    rows = read_verdicts(out)
    assert rows[("s", "0")]["verdict"] == "pass" and rows[("s", "0")]["sandbox"] == "in-gvisor"
    assert rows[("s", "1")]["verdict"] != "pass"


@pytest.mark.runsc
def test_runsc_sandboxes_stay_inside_the_graders_own_cgroup(tmp_path):
    """A runsc sandbox's CPU is counted in a cgroup the grader makes for it; that cgroup must sit
    below the grader's own, or the sandbox escapes the limits a pod, a container or a systemd
    unit put on the grader (on cgroup v2, or v1 with cpu and cpuacct mounted together)."""
    require_tool("runsc", "apt-get install -y runsc")
    from valley.grader.cpu import CpuCgroup

    owned = [directory for directory, _usage in CpuCgroup.own() if os.access(directory, os.W_OK)]
    if not owned:  # CI runs as root: a skip would let the test pass without checking anything
        pytest.fail(
            "no writable CPU-accounting cgroup of this process; run the tests as root with cgroupfs mounted read-write"
        )
    parent = owned[0] / f"valley-test-{os.getpid()}"
    parent.mkdir()
    try:
        script = textwrap.dedent("""
            import sys
            from valley.grader.session import Session
            with Session("runsc").start() as session:
                assert session.load("print(sum(range(10**6)))", "stdin", None) is None
                print(session.cgroup.path, session.run("", 5)["stdout"].strip(), flush=True)
        """)
        result = subprocess.run(
            [
                "/bin/sh",
                "-c",
                'echo $$ > "$0" && exec "$@"',
                str(parent / "cgroup.procs"),
                sys.executable,
                "-c",
                script,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(__file__).parents[3],
        )
        assert result.returncode == 0, result.stderr[-2000:]
        sandbox_cgroup, output = result.stdout.split()
        assert output == str(sum(range(10**6)))
        assert Path(sandbox_cgroup).parent == parent, (
            f"the sandbox's cgroup {sandbox_cgroup} is not below the grader's {parent}"
        )
    finally:
        for child in [*parent.iterdir()]:
            if child.is_dir():
                child.rmdir()
        parent.rmdir()
