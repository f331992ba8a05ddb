"""The MLflow server command exactly as the kit's Deployment runs it (args and environment from
the built dev overlay), started here on loopback with a sqlite store in place of Postgres and a
local directory in place of S3: in-cluster Host headers are accepted, others refused."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from manager.mlflow_ui import free_port
from tests.k8s.kustomize_builds import built


def get(port: int, path: str, host: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", path, headers={"Host": host})
    return connection.getresponse().status


@pytest.mark.slow
def test_deployment_command_serves_in_cluster_hosts_only(tmp_path: Path):
    deployment = next(
        o for o in built("overlays/dev") if o["kind"] == "Deployment" and o["metadata"]["name"] == "valley-mlflow"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    port = free_port()
    args = [a for a in container["args"] if not a.startswith(("--host=", "--port="))] + [
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    env |= {
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",  # the Secret's Postgres URI in the cluster
        "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "artifacts"),  # the ConfigMap's s3:// URI in the cluster
        "HOME": str(tmp_path),
    }
    mlflow = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow), "server", *args], env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(port, "/health", "localhost") == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not become healthy"
            time.sleep(0.3)
        path = "/api/2.0/mlflow/experiments/search?max_results=1"
        for host in ("valley-mlflow:5000", "valley-mlflow.valley.svc.cluster.local:5000", f"localhost:{port}"):
            assert get(port, path, host) == 200, host
        assert get(port, path, "evil.example.com:5000") == 403
    finally:
        server.terminate()
        server.wait(timeout=30)
