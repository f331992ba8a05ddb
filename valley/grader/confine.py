"""What confines a test's program inside the sandbox (the harness's test child applies it right
before the program runs): rlimits, an unprivileged uid, no capabilities, and a seccomp filter.
Standard library only; harness.py imports it from its own directory."""

from __future__ import annotations

import ctypes
import math
import os
import resource

PR_SET_NO_NEW_PRIVS = 38
CAPABILITY_VERSION_3 = 0x20080522


def libc():
    return ctypes.CDLL(None, use_errno=True)


def prctl(option: int, arg: int) -> None:
    libc().prctl(option, arg, 0, 0, 0)


def set_limits(limits: dict, cpu_limit_s: float) -> None:
    mb = 1024 * 1024
    cpu = int(math.ceil(cpu_limit_s))
    wanted = {  # (soft, hard)
        resource.RLIMIT_AS: (limits["address_space_mb"] * mb,) * 2,
        resource.RLIMIT_CPU: (cpu, cpu + 1),  # SIGXCPU at the limit (a timeout), SIGKILL if that is ignored
        resource.RLIMIT_NPROC: (limits["processes"],) * 2,
        resource.RLIMIT_FSIZE: (limits["file_size_mb"] * mb,) * 2,
        resource.RLIMIT_NOFILE: (limits["open_files"],) * 2,
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_STACK: (limits["stack_mb"] * mb,) * 2,
    }
    for kind, (soft, hard) in wanted.items():
        _current, allowed = resource.getrlimit(kind)
        if allowed != resource.RLIM_INFINITY:
            soft, hard = min(soft, allowed), min(hard, allowed)
        try:
            resource.setrlimit(kind, (soft, hard))
        except (ValueError, OSError):
            resource.setrlimit(kind, (soft, allowed))


def mapped(uid: int | None) -> bool:
    """Whether this (possibly user-namespaced) root can become `uid`: a rootless user namespace
    maps only the caller itself, and then the namespaces alone confine the program."""
    if uid is None or os.geteuid() != 0:
        return False
    try:
        with open("/proc/self/uid_map", encoding="ascii") as handle:
            ranges = [tuple(map(int, line.split())) for line in handle if line.strip()]
    except OSError:
        return True
    return any(inside <= uid < inside + count for inside, _outside, count in ranges)


def drop_privileges(uid: int | None) -> None:
    """Become `uid` when we may; in every case hold no capability and gain none by exec."""
    if uid is not None and os.geteuid() == 0:
        become(uid)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    header = (ctypes.c_uint32 * 2)(CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable × 2 words: all empty
    if libc().capset(header, data) != 0:
        os._exit(126)  # a namespaced root that kept CAP_SYS_CHROOT could leave its root
    _installsyscall_filter()


def become(uid: int) -> None:
    try:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    except OSError:  # cannot happen once mapped() said yes; never run the program as root
        os._exit(126)


# seccomp: (x86_64, aarch64) syscall numbers. What a program must not do to other processes
# (signals but to itself, ptrace, their memory, their file descriptors), no sockets but Unix
# ones, and no way to more kernel surface or out of its root: new namespaces, mounts, chroot,
# io_uring, userfaultfd, bpf, perf events, file handles, keyrings.
SYSCALLS = {
    0xC000003E: {
        "kill": 62,
        "tkill": 200,
        "tgkill": 234,
        "socket": 41,
        "clone": 56,
        "clone3": 435,
        "denied": {
            "ptrace": 101,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "pidfd_send_signal": 424,
            "pidfd_getfd": 438,
            "kcmp": 312,
            "unshare": 272,
            "setns": 308,
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            "chroot": 161,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "userfaultfd": 323,
            "bpf": 321,
            "perf_event_open": 298,
            "name_to_handle_at": 303,
            "open_by_handle_at": 304,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
        },
    },
    0xC00000B7: {
        "kill": 129,
        "tkill": 130,
        "tgkill": 131,
        "socket": 198,
        "clone": 220,
        "clone3": 435,
        "denied": {
            "ptrace": 117,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "pidfd_send_signal": 424,
            "pidfd_getfd": 438,
            "kcmp": 272,
            "unshare": 97,
            "setns": 268,
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            "chroot": 51,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "userfaultfd": 282,
            "bpf": 280,
            "perf_event_open": 241,
            "name_to_handle_at": 264,
            "open_by_handle_at": 265,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
        },
    },
}
X32_SYSCALL_BIT = 0x40000000  # x86-64's x32 ABI: the same calls under other numbers
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SECCOMP_RET_ALLOW, SECCOMP_RET_EPERM, SECCOMP_RET_ENOSYS = 0x7FFF0000, 0x00050001, 0x00050026
AF_UNIX = 1
CLONE_NAMESPACES = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]


def syscall_filter(arch: int, numbers: dict, own_pid: int) -> list[tuple[int, int, int, int]]:
    """A BPF program: signals only to the program's own process group, no sockets but Unix
    ones (a second wall behind the network namespace, and the only one where namespaces are
    unavailable), `clone` without namespace flags, `clone3` unknown (its flags sit in memory a
    filter cannot read; the C library then falls back to `clone`), every call in
    `numbers["denied"]` refused. LiveCodeBench's reliability_guard disables os.kill too. Every
    call through another architecture's entry (i386 `int 0x80` on x86-64: its numbers differ and
    this filter would not know them) and every x32 call is refused outright."""
    load, jump_eq, jump_ge, jump_set, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    nr, arch_offset, arg0 = 0, 4, 16

    def deny_if(number: int, answer: int = SECCOMP_RET_EPERM) -> list[tuple[int, int, int, int]]:
        return [(jump_eq, 0, 1, number), (ret, 0, 0, answer)]

    program = [(load, 0, 0, arch_offset), (jump_eq, 1, 0, arch), (ret, 0, 0, SECCOMP_RET_EPERM), (load, 0, 0, nr)]
    if arch == 0xC000003E:
        program += [(jump_ge, 0, 1, X32_SYSCALL_BIT), (ret, 0, 0, SECCOMP_RET_EPERM)]
    for number in numbers["denied"].values():
        program += deny_if(number)
    program += deny_if(numbers["clone3"], SECCOMP_RET_ENOSYS)
    # kill/tkill/tgkill: the first argument must be 0, the program's pid or its process group
    check_signal = [
        (load, 0, 0, arg0),
        (jump_eq, 2, 0, 0),
        (jump_eq, 1, 0, own_pid),
        (jump_eq, 0, 1, (-own_pid) & 0xFFFFFFFF),
        (ret, 0, 0, SECCOMP_RET_ALLOW),
        (ret, 0, 0, SECCOMP_RET_EPERM),
    ]
    # socket: only AF_UNIX
    check_socket = [
        (load, 0, 0, arg0),
        (jump_eq, 0, 1, AF_UNIX),
        (ret, 0, 0, SECCOMP_RET_ALLOW),
        (ret, 0, 0, SECCOMP_RET_EPERM),
    ]
    # clone: no namespace flag in its first argument (the flags' low 32 bits hold them all)
    check_clone = [
        (load, 0, 0, arg0),
        (jump_set, 0, 1, CLONE_NAMESPACES),
        (ret, 0, 0, SECCOMP_RET_EPERM),
        (ret, 0, 0, SECCOMP_RET_ALLOW),
    ]
    # dispatch: a jump per checked call to its block; its offset counts the instructions skipped
    jumps = [(numbers[name], "signal") for name in ("kill", "tkill", "tgkill")]
    jumps += [(numbers["socket"], "socket"), (numbers["clone"], "clone")]
    blocks = {"signal": check_signal, "socket": check_socket, "clone": check_clone}
    starts, position = {}, len(jumps) + 1  # the blocks follow the jumps and one allow
    for name, block in blocks.items():
        starts[name], position = position, position + len(block)
    for index, (number, name) in enumerate(jumps):
        program.append((jump_eq, starts[name] - index - 1, 0, number))
    program.append((ret, 0, 0, SECCOMP_RET_ALLOW))
    for block in blocks.values():
        program += block
    return program


def _installsyscall_filter() -> None:
    arch = native_arch()
    if arch not in SYSCALLS:
        return
    program = syscall_filter(arch, SYSCALLS[arch], os.getpid())
    filters = (SockFilter * len(program))(*(SockFilter(*instruction) for instruction in program))
    fprog = SockFprog(len(program), filters)
    if libc().prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        os._exit(126)  # never run a program without the filter


def native_arch() -> int | None:
    return {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}.get(os.uname().machine)
