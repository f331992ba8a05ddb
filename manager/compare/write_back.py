"""Writing a comparison back into MLflow: the plot and the summary JSON as artifacts under
`compare/`, only where asked: the study's run (`--log-to-study-run`; a local launch asks at its
end) and the run an MLflow Project entry point runs in (`mlflow run . -e compare` sets
MLFLOW_RUN_ID). A store compare merely reads is left as it was."""

from __future__ import annotations

from pathlib import Path


def log_to_run(tracker, run_id: str, files: list[Path]) -> str:
    """Log `files` under `compare/` of the run; its id."""
    for path in files:
        tracker.client.log_artifact(run_id, str(path), artifact_path="compare")
    return run_id
