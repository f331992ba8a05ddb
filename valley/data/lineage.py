"""Log a built subset as the MLflow run's training input (digest, source, profile)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from valley.files import file_sha256
from valley.tracking import attached_run


def subset_dataset(manifest_path: Path):
    """An `mlflow.data` dataset describing the subset: named by its directory (which holds the
    student and token budget: two students' subsets of the same examples differ in tokens), with
    the manifest's digest (files, token statistics, tokenizer), the directory's name as source (a
    path relative to the datasets root, the same in every pod and after a store moves), and a
    profile with sizes, label counts and token statistics.

    MLflow keeps one dataset per (name, digest) in an experiment: named by the subset key and
    digested by train.jsonl alone, tiny-llama's subset was merged into tiny-qwen's (same rows,
    other tokenizer) and showed tiny-qwen's folder and token statistics."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema

    manifest = json.loads(Path(manifest_path).read_text())
    stats = manifest["token_stats"]
    profile = {
        "num_rows": manifest["sizes"]["written"],
        "subset": manifest["subset"],
        "seed": manifest["seed"],
        "candidates": manifest["sizes"]["candidates"],
        "dropped_over_length": manifest["sizes"]["dropped_over_length"],
        "label_counts": manifest["label_counts"],
        "tokens": stats.get("tokens_kept", 0),
        "mean_tokens": stats.get("mean"),
        "share_above_max_seq_len": stats.get("share_above_max_seq_len"),
        "sources": [f"{s['dataset']}@{s['revision']}" for s in manifest["sources"]],
    }

    class SubsetDataset(MetaDataset):
        @property
        def profile(self):
            return profile

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(profile, sort_keys=True)}

    directory = Path(manifest_path).resolve().parent
    with warnings.catch_warnings():  # "can be interpreted in multiple ways": both are the local kind
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(directory.name)
    schema = Schema([ColSpec("string", "messages")])
    return SubsetDataset(source, name=directory.name, digest=file_sha256(Path(manifest_path))[:16], schema=schema)


def log_subset_input(manifest_path: Path) -> bool:
    """`mlflow.log_input` the subset into the attached run; False when no run is attached."""
    with attached_run() as run:
        if run is None:
            return False
        import mlflow
        from mlflow.exceptions import MlflowException

        manifest = json.loads(Path(manifest_path).read_text())
        tags = {"valley.data.key": manifest["key"], "valley.data.subset_dir": Path(manifest_path).resolve().parent.name}
        for attempt in range(3):
            try:
                mlflow.log_input(subset_dataset(manifest_path), context="training", tags=tags)
                return True
            except MlflowException as error:
                # runs logging the same subset at once: the store looks the dataset row up, then
                # inserts it, so the slower writer meets the row the faster one just made (sqlite:
                # UNIQUE constraint, Postgres/MySQL: duplicate key); looked up again, it is found
                text = str(error).lower()
                if attempt == 2 or not ("unique constraint" in text or "duplicate" in text):
                    raise
