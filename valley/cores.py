"""How many CPUs this process may use. Standard library only, nothing happens on import: the
control plane, the grader and the benchmarks all size their work with it."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota (a pod's limit)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for path, parse in (
        ("/sys/fs/cgroup/cpu.max", lambda t: t.split()),
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", lambda t: [t.strip(), "100000"]),
    ):
        try:
            with open(path, encoding="ascii") as handle:
                quota, period = parse(handle.read())
            if quota not in ("max", "-1"):
                cores = min(cores, -(-int(quota) // int(period)))
        except (OSError, ValueError):
            continue
    return max(1, cores)
