"""A local launch's watcher: if the launch dies without closing its MLflow runs (kill -9, the
out-of-memory killer, a crashed terminal multiplexer), the watcher ends the steps it left running
and marks its open runs KILLED, so MLflow never shows a run RUNNING that nothing runs.

The launcher starts it (`LaunchWatch`) and tells it, one line at a time on its stdin, which step
process groups run and which runs are open; the kernel closes that pipe however the launcher ends.
At the end of its input the watcher ends what is still running and marks what is still open: after
a launch that ended normally or handled its interrupt that is nothing; after one that died, it is
what its interrupt handler would have done.

    python -m manager.backends.local_watch TRACKING_URI     (stdin: group+ N | group- N | open ID | closed ID)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

LAUNCHER_DIED_NOTE = (
    "the local launch ended without closing this run (killed or out of memory); "
    "rerun the same `valleyctl launch` to resume past finished steps"
)
STEP_GRACE_S = 10.0


class LaunchWatch:
    """The launcher's side: a watcher process fed what it needs to clean up after this launch.
    A watcher that could not start or has died only costs that protection, never the launch."""

    def __init__(self, tracking_uri: str) -> None:
        self._lock = threading.Lock()
        try:
            # its own process group: a Ctrl-C at the terminal reaches the launch, not its watcher
            self._process: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-m", "manager.backends.local_watch", tracking_uri],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                process_group=0,
                text=True,
            )
        except OSError:
            self._process = None

    def group_started(self, pgid: int) -> None:
        self._say(f"group+ {pgid}")

    def group_ended(self, pgid: int) -> None:
        self._say(f"group- {pgid}")

    def opened(self, run_id: str) -> None:
        self._say(f"open {run_id}")

    def closed(self, run_id: str) -> None:
        self._say(f"closed {run_id}")

    def close(self) -> None:
        """The launch is over: the watcher ends what it still knows to be open, and exits."""
        if self._process is None:
            return
        with self._lock:
            try:
                self._process.stdin.close()
            except OSError:
                pass
        self._process.wait()

    def _say(self, line: str) -> None:
        if self._process is None:
            return
        with self._lock:
            try:
                self._process.stdin.write(line + "\n")
                self._process.stdin.flush()
            except (OSError, ValueError):
                pass


def stop_groups(groups: list[int], grace_s: float = STEP_GRACE_S) -> None:
    """SIGTERM each process group, SIGKILL what is left of them after `grace_s`."""
    _signal_groups(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _signal_groups(groups, 0):
        time.sleep(0.1)
    _signal_groups(groups, signal.SIGKILL)


def _signal_groups(groups: list[int], sig: int) -> bool:
    """Send `sig` (0: only look) to each group; whether any of them was still there."""
    alive = False
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
            alive = True
        except (ProcessLookupError, PermissionError):
            pass
    return alive


def main() -> None:
    tracking_uri = sys.argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the launcher's to handle
    groups: set[int] = set()
    open_runs: dict[str, None] = {}  # in the order the launcher opened them
    for line in sys.stdin:
        verb, _, value = line.strip().partition(" ")
        if verb == "group+":
            groups.add(int(value))
        elif verb == "group-":
            groups.discard(int(value))
        elif verb == "open":
            open_runs[value] = None
        elif verb == "closed":
            open_runs.pop(value, None)
    # a step left running would record its run on its own: end it first
    stop_groups(sorted(groups))
    if open_runs:
        from manager.tracking import KILLED, Tracker

        tracker = Tracker(tracking_uri)
        for run_id in open_runs:
            tracker.set_status(run_id, KILLED, note=LAUNCHER_DIED_NOTE)


if __name__ == "__main__":
    main()
