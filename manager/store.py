"""A local MLflow store that moves: its database and the artifact folders beside it copied to
another directory or machine. MLflow records each artifact location as an absolute path when the
experiment, run or logged model is created (it has no relative form for a local store), so a copy
still points at the old place; `relink` points every recorded location at the folders beside the
database. A server's store does not need it: its artifacts are served (`--serve-artifacts`)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from valley.errors import ConfigError

#: the folders a local store keeps artifacts in: valley's (beside the database) and MLflow's default
ARTIFACT_FOLDERS = ("mlartifacts", "mlruns")
#: (table, key column, location column) of every artifact location MLflow records
LOCATIONS = (
    ("experiments", "experiment_id", "artifact_location"),
    ("runs", "run_uuid", "artifact_uri"),
    ("logged_models", "model_id", "artifact_location"),
)


@dataclass(frozen=True)
class Relinked:
    database: str
    #: old folder -> new folder
    moved: dict[str, str]
    #: table -> rows changed
    rows: dict[str, int]


def sqlite_path(tracking_uri: str) -> Path:
    if not tracking_uri.startswith("sqlite:///"):
        raise ConfigError(
            f"--tracking-uri: {tracking_uri} is not a local sqlite store; a server's store moves with its "
            "--backend-store-uri and --artifacts-destination, nothing to relink"
        )
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    if not path.is_file():
        raise ConfigError(f"--tracking-uri: no database at {path}; pass the copied store's sqlite:///…/mlflow.db")
    return path


def relocated(location: str, store_dir: Path) -> tuple[str, str] | None:
    """(old folder, location under store_dir) when `location` lies in an artifact folder elsewhere."""
    is_uri = location.startswith("file://")
    path = unquote(urlparse(location).path) if is_uri else location
    parts = Path(path).parts
    for index, part in reversed(list(enumerate(parts))):
        if part in ARTIFACT_FOLDERS:
            old_folder = Path(*parts[: index + 1])
            new_path = store_dir.joinpath(*parts[index:])
            if old_folder == store_dir / part:
                return None
            return str(old_folder), new_path.as_uri() if is_uri else str(new_path)
    return None


def relink(tracking_uri: str) -> Relinked:
    """Point every artifact location of the store at the folders beside its database, in one
    transaction (all rows or none)."""
    database = sqlite_path(tracking_uri)
    store_dir = database.resolve().parent
    moved: dict[str, str] = {}
    rows: dict[str, int] = {}
    with sqlite3.connect(database) as connection:  # commits on success, rolls back on any error
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, key, column in LOCATIONS:
            if table not in tables:
                continue
            changes = []
            for row_key, location in connection.execute(f"SELECT {key}, {column} FROM {table}"):
                found = relocated(location or "", store_dir)
                if found:
                    old_folder, new_location = found
                    moved[old_folder] = str(store_dir / Path(old_folder).name)
                    changes.append((new_location, row_key))
            connection.executemany(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", changes)
            rows[table] = len(changes)
    return Relinked(str(database), moved, rows)
