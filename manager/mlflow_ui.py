"""Look at an MLflow store the way a user does: a real `mlflow server` on a free local port,
opened in headless Chromium (Debian's, driven through Playwright), each page waited on until
its content has rendered (charts drawn, no "loading" left), then read or captured. Used by the
UI test and by scripts/mlflow-ui-screenshot.py; nothing here is needed to run a study."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from valley.errors import ValleyError
from valley.vocabulary import VIEW_KEY

#: the longest a page may take to render (the first load compiles MLflow's bundle on a busy machine)
PAGE_TIMEOUT_MS = 120_000
#: a page has rendered when none of these is on it (MLflow's spinners and skeletons)
LOADING = "[data-testid*='loading'], [class*='skeleton'], [aria-busy='true'], [role='progressbar']"


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
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=env)
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


@contextmanager
def browser(size: tuple[int, int] = (2400, 1200)) -> Iterator[object]:
    """A page of headless Chromium (the system's, not a downloaded build), wide enough that the
    runs table draws every column of valley's view (it leaves columns out of view undrawn)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chrome = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = chrome.new_page(viewport={"width": size[0], "height": size[1]})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            yield page
        finally:
            chrome.close()


def open_rendered(page, url: str, *, showing: str, charts: int = 0) -> str:
    """Go to `url`, wait until `showing` (text) is on the page, at least `charts` charts are drawn
    and nothing is loading; return the page's visible text."""
    page.goto(url)
    page.get_by_text(showing, exact=False).first.wait_for(state="visible")
    if charts:
        page.wait_for_function(
            "n => document.querySelectorAll('.js-plotly-plot .main-svg, canvas').length >= n", arg=charts
        )
    page.wait_for_function(f"() => document.querySelectorAll({LOADING!r}).length === 0")
    assistant = page.locator("button[aria-label='Close']")  # MLflow's assistant panel opens on first visit
    if assistant.count():
        assistant.first.click()
    return " ".join(page.inner_text("body").split())


#: MLflow 3.17 picks an experiment's pages from a workflow type held per browser (GenAI by
#: default, where runs show up under "Evaluations"), not from the experiment's `mlflow.experimentKind`
#: tag (which earlier 3.x releases read, and valley sets too); a link names it
MODEL_TRAINING_PAGES = "workflowType=machine_learning"


def experiment_url(server: str, experiment_id: str) -> str:
    """The experiment as valley links it: MLflow's model-training pages, which open on the runs."""
    return f"{server}/#/experiments/{experiment_id}?{MODEL_TRAINING_PAGES}"


def runs_view_url(server: str, experiment_id: str) -> str:
    """The runs table in valley's saved view: pass@1, its CI and the loss as columns."""
    return f"{server}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}&{MODEL_TRAINING_PAGES}"


def run_url(server: str, experiment_id: str, run_id: str, tab: str = "") -> str:
    return f"{server}/#/experiments/{experiment_id}/runs/{run_id}" + (f"/{tab}" if tab else "")


def compare_url(server: str, experiment_id: str, run_ids: list[str]) -> str:
    """MLflow's side-by-side comparison of runs."""
    runs = ",".join(f'"{run_id}"' for run_id in run_ids)
    return f'{server}/#/compare-runs?runs=[{runs}]&experiments=["{experiment_id}"]'
