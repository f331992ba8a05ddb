"""CPU accounting of sandboxes from the host: a cgroup per runsc sandbox (exact, and it keeps
the time of processes that are gone), else the sandbox's live process tree read from /proc, and
the time its threads waited for a CPU (which the wall-clock guard does not count)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from valley.grader.harness import cpu_ticks, proc_stats


class CpuCgroup:
    """A CPU-accounting cgroup (v1 cpuacct, or v2) of one sandbox. `removed_cpu_s` sums the CPU
    of the sandboxes closed so far in this process (the benchmark's CPU-used figure)."""

    removed_cpu_s = 0.0
    _removed_lock = threading.Lock()

    def __init__(self, path: Path, usage: str):
        self.path, self.usage = path, usage
        self.procs = path / "cgroup.procs"

    @classmethod
    def make(cls, name: str) -> "CpuCgroup | None":
        """Below this process's own cgroup: a sandbox must stay inside the limits a pod, a container
        or a systemd unit put on the grader (on cgroup v2, or v1 with cpu and cpuacct mounted
        together, a cgroup made at the root would be outside them). None where this grader may
        not make one (not root, read-only cgroupfs): then the sandbox's live processes are read."""
        for parent, usage in cls.own():
            try:
                os.mkdir(parent / name)
            except OSError:
                continue
            return cls(parent / name, usage)
        return None

    @staticmethod
    def own() -> list[tuple[Path, str]]:
        """This process's cgroup directories that account CPU, each with its usage file: v1's
        cpuacct hierarchy first, then v2's unified one."""
        try:
            with open("/proc/self/cgroup", encoding="utf-8") as handle:
                entries = [line.rstrip("\n").split(":", 2) for line in handle if line.count(":") >= 2]
        except OSError:
            return []
        found = []
        for mount, usage, marker, controller in (
            ("/sys/fs/cgroup/cpuacct", "cpuacct.usage", "cpuacct.usage", "cpuacct"),
            ("/sys/fs/cgroup", "cpu.stat", "cgroup.controllers", ""),
        ):
            for _id, controllers, path in entries:
                if (controller in controllers.split(",")) if controller else controllers == "":
                    directory = Path(mount + path.rstrip("/"))
                    if (directory / marker).exists():
                        found.append((directory, usage))
        return found

    def cpu_s(self) -> float:
        text = (self.path / self.usage).read_text()
        if self.usage == "cpuacct.usage":
            return int(text) / 1e9
        return int(next(line.split()[1] for line in text.splitlines() if line.startswith("usage_usec"))) / 1e6

    def remove(self) -> None:
        with contextlib.suppress(OSError, ValueError, StopIteration), CpuCgroup._removed_lock:
            CpuCgroup.removed_cpu_s += self.cpu_s()
        for _ in range(50):  # the sandbox's last processes may still be exiting
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def tree_usage(root: int) -> tuple[int, int]:
    """For `root` (a sandbox's host process) and its descendants: CPU clock ticks used (their
    own and their reaped children's) and nanoseconds their threads waited on a run queue (0
    where the kernel keeps no schedstat)."""
    stats = proc_stats()
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    ticks, queued_ns, frontier = 0, 0, [root] if root in stats else []
    while frontier:
        pid = frontier.pop()
        ticks += cpu_ticks(stats[pid])
        queued_ns += _run_queue_wait_ns(pid)
        frontier.extend(children.get(pid, ()))
    return ticks, queued_ns


def _run_queue_wait_ns(pid: int) -> int:
    total = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/schedstat", "rb") as handle:
                total += int(handle.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total
