"""A rendered grader container's probes run as a kubelet runs them, in a network namespace of its own.

Run under `unshare --net` (the grader's port is fixed by the render; a private namespace keeps it
off the machine's): the container JSON on stdin, it brings up loopback, gives the "pod" the IP
POD_IP (on lo, as a CNI gives a pod one), and prints one JSON object: every probe's outcome before
the grader serves and while it serves. A kubelet dials tcpSocket and httpGet probes at the pod's
IP from outside the containers; it runs an exec probe inside the container.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

POD_IP = "10.250.0.5"
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def port_of(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port)


def in_container(command: list[str]) -> list[str]:
    """The image's `python` is this interpreter here."""
    return [sys.executable, *command[1:]] if command[0] == "python" else command


def answers(container: dict, probe: dict) -> bool:
    timeout = probe.get("timeoutSeconds", 1)
    if "exec" in probe:
        command = in_container(probe["exec"]["command"])
        try:
            return subprocess.run(command, capture_output=True, timeout=timeout).returncode == 0
        except subprocess.TimeoutExpired:
            return False
    check = probe.get("tcpSocket") or probe.get("httpGet")
    address = (check.get("host") or POD_IP, port_of(container, check["port"]))
    try:
        if "tcpSocket" in probe:
            socket.create_connection(address, timeout).close()
            return True
        url = f"http://{address[0]}:{address[1]}{check.get('path', '/')}"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 400
    except OSError:
        return False


def main() -> None:
    container = json.load(sys.stdin)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{POD_IP}/32", "dev", "lo"], check=True)
    outcome = {"before": {name: answers(container, container[name]) for name in PROBES}}
    # outside gVisor the grader refuses `in-gvisor`; its serving is the same with `process`
    command = [part.replace("in-gvisor", "process") for part in in_container(container["command"])]
    grader = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        outcome["grader"] = grader.stdout.readline().strip()  # "grader serving on ..." once it listens
        deadline = time.monotonic() + 10
        while True:
            outcome["serving"] = {name: answers(container, container[name]) for name in PROBES}
            if all(outcome["serving"].values()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        grader.terminate()
        grader.wait(timeout=30)
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
