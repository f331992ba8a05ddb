"""Look at an MLflow store the way a user does: a real `mlflow server` on a free local
port, opened in headless Chromium (DOM dump or screenshot). Used by the UI test and by
scripts/mlflow-ui-screenshot.py; nothing here is needed to run a study."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from valley.errors import ValleyError

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mlflow_server(backend_store_uri: str, *, workdir: Path, timeout: float = 120) -> Iterator[str]:
    """A tracking server over `backend_store_uri` (one worker, no job runner); yields its URL."""
    port = free_port()
    log = workdir / "mlflow-server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                backend_store_uri,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise ValleyError(f"mlflow server did not start; its log: {log}") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise ValleyError("chromium: not installed; run `sudo apt-get install -y chromium` (`make setup` does)")
    return found


def _browse(url: str, extra: list[str], *, budget_ms: int) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="valley-chromium-") as profile:
        return subprocess.run(
            [
                chromium(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )


def dump_dom(url: str, *, budget_ms: int = 20000) -> str:
    """The page's DOM after its scripts ran for `budget_ms` of virtual time."""
    return _browse(url, ["--dump-dom"], budget_ms=budget_ms).stdout


def screenshot(url: str, png: Path, *, size: str = "1600,1000", budget_ms: int = 20000) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    result = _browse(url, [f"--screenshot={png}", f"--window-size={size}"], budget_ms=budget_ms)
    if not png.is_file():
        raise ValleyError(f"chromium wrote no screenshot: {result.stderr.strip().splitlines()[-1:]}")
    return png


def experiment_url(server: str, experiment_id: str) -> str:
    """The experiment's runs table (its default page is the GenAI overview)."""
    return f"{server}/#/experiments/{experiment_id}/runs"


def run_url(server: str, experiment_id: str, run_id: str, tab: str = "") -> str:
    return f"{server}/#/experiments/{experiment_id}/runs/{run_id}" + (f"/{tab}" if tab else "")


def page_text(dom: str) -> str:
    """The visible text of a dumped DOM, whitespace collapsed."""
    import re

    body = re.sub(r"<style.*?</style>|<script.*?</script>", " ", dom, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())
