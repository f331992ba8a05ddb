"""Writing a comparison back into MLflow: the plot and the summary JSON as artifacts of the
study run. Only when asked (`--log-to-study-run`; a local launch asks at its end): a store
compare merely reads is left as it was."""

from __future__ import annotations

from pathlib import Path


def log_to_study_run(tracker, study: str, files: list[Path]) -> str:
    """Log `files` under `compare/` of the study's run (created if the store lacks it); its id."""
    run_id = tracker.study_run_id(study)
    for path in files:
        tracker.client.log_artifact(run_id, str(path), artifact_path="compare")
    return run_id
