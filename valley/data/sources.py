"""Loaders for the real datasets, by their Hugging Face IDs and schemas, or from a local copy.

* `nvidia/OpenCodeReasoning-2` (config `train`, split `python`): responses in `r1_generation`;
  `question` is "-" and is re-joined from the source dataset by (`dataset`, `split`, `index`)
  the way NeMo-Skills' `prepare_questions.py` does.
* `BAAI/TACO`: tests in `input_output`, uppercase difficulty labels.
* `codeparrot/apps`, `deepmind/code_contests`, `open-r1/codeforces`: the other question sources.
* `livecodebench/code_generation_lite`: see `load_lcb_release`.

TACO, APPS and LiveCodeBench carry loading scripts, which `datasets>=4` refuses ("Dataset
scripts are no longer supported"), so their data files are fetched with `huggingface_hub`
and read with the packaged `parquet`/`json` builders instead.

A local copy is a directory laid out like the sample corpus: `ocr2.jsonl`, `taco.jsonl` (the
`train` split) or `taco/<split>.jsonl`, likewise `apps`, `code_contests`, `codeforces`,
`lcb.jsonl`; `.parquet` works wherever `.jsonl` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from valley.errors import ValleyError

OCR2_ID = "nvidia/OpenCodeReasoning-2"
TACO_ID = "BAAI/TACO"
APPS_ID = "codeparrot/apps"
CODE_CONTESTS_ID = "deepmind/code_contests"
CODEFORCES_ID = "open-r1/codeforces"
LCB_ID = "livecodebench/code_generation_lite"

#: OCR2 `dataset` value -> (Hub ID, local name)
QUESTION_SOURCES = {
    "taco": (TACO_ID, "taco"),
    "apps": (APPS_ID, "apps"),
    "code_contests": (CODE_CONTESTS_ID, "code_contests"),
    "open-r1/codeforces": (CODEFORCES_ID, "codeforces"),
}

OCR2_COLUMNS = ("id", "question_id", "question", "r1_generation", "dataset", "split", "index", "difficulty")
TACO_COLUMNS = ("question", "starter_code", "input_output", "difficulty")
LCB_COLUMNS = (
    "question_id",
    "question_title",
    "question_content",
    "platform",
    "contest_date",
    "difficulty",
    "starter_code",
    "public_test_cases",
    "private_test_cases",
    "metadata",
)

#: TACO's difficulty labels (stored uppercase, compared case-insensitively) -> (the paper's RQ3
#: class, the LiveCodeBench level valley's generated corpora give a problem of that label). The
#: paper's classes: easy = {easy, medium}, hard = {medium_hard, hard, very_hard}; LCB's levels
#: follow them, so a problem counts as hard in both. The one place this mapping is written.
TACO_DIFFICULTY: dict[str, tuple[str | None, str]] = {
    "easy": ("easy", "easy"),
    "medium": ("easy", "medium"),
    "medium_hard": ("hard", "hard"),
    "hard": ("hard", "hard"),
    "very_hard": ("hard", "hard"),
    "unknown_difficulty": (None, "medium"),
}

#: LiveCodeBench release tags -> the jsonl files they cover (README's version table)
_LCB_FILES = ["test.jsonl"] + [f"test{n}.jsonl" for n in range(2, 7)]


@dataclass(frozen=True)
class Origin:
    """Where a table came from, for the manifest."""

    dataset: str
    revision: str
    location: str


def difficulty_class(label: str | None) -> str | None:
    """'EASY'/'Medium' -> 'easy'; 'MEDIUM_HARD'/'hard'/'VERY_HARD' -> 'hard'; anything else -> None."""
    return TACO_DIFFICULTY.get((label or "").strip().lower(), (None, ""))[0]


def lcb_difficulty(label: str) -> str:
    """The LiveCodeBench level of a TACO label: 'EASY' -> 'easy', 'MEDIUM' -> 'medium', the hard class -> 'hard'."""
    return TACO_DIFFICULTY[label.strip().lower()][1]


def _quiet_datasets():
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def read_table(path: Path):
    """A local .jsonl/.json/.parquet file, or a directory of them, as a `datasets.Dataset`."""
    if not path.exists():
        raise ValleyError(
            f"{path}: not found; point --local at a corpus directory (valley data sample-corpus --out DIR shows the "
            "layout)"
        )
    datasets = _quiet_datasets()
    files = (
        sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".json", ".parquet")) if path.is_dir() else [path]
    )
    if not files or not all(f.exists() for f in files):
        raise ValleyError(f"{path}: no .jsonl or .parquet data there; point --local at a corpus directory")
    builder = "parquet" if files[0].suffix == ".parquet" else "json"
    return datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")


def require_columns(table, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValleyError(
            f"{what}: missing column(s) {', '.join(missing)}; expected the {what} schema "
            f"(has: {', '.join(table.column_names)})"
        )


def _local_file(local: Path, name: str) -> Path | None:
    for suffix in (".jsonl", ".parquet"):
        if (local / f"{name}{suffix}").exists():
            return local / f"{name}{suffix}"
    return None


def _hub_files(repo_id: str, patterns: list[str], revision: str | None) -> tuple[list[Path], str]:
    """Download matching files of a dataset repo; returns the local paths and the resolved commit."""
    from huggingface_hub import HfApi, snapshot_download

    commit = HfApi().dataset_info(repo_id, revision=revision).sha
    root = Path(snapshot_download(repo_id, repo_type="dataset", revision=commit, allow_patterns=patterns))
    files = sorted(p for pattern in patterns for p in root.glob(pattern))
    if not files:
        raise ValleyError(f"{repo_id}@{commit}: no files match {patterns}; pass --local with a copy of the data")
    return files, commit


# ------------------------------------------------------------------------------------ OCR2


def load_ocr2(local: Path | None = None, revision: str | None = None):
    """OCR2's python split as a `datasets.Dataset`, plus its origin."""
    if local is not None:
        path = _local_file(local, "ocr2") or local / "ocr2"
        table, origin = read_table(path), Origin(OCR2_ID, "local", str(path))
    else:
        from huggingface_hub import HfApi

        datasets = _quiet_datasets()
        commit = HfApi().dataset_info(OCR2_ID, revision=revision).sha
        table = datasets.load_dataset(OCR2_ID, "train", split="python", revision=commit)
        origin = Origin(OCR2_ID, commit, f"hf://datasets/{OCR2_ID}")
    require_columns(table, OCR2_COLUMNS, "ocr2")
    return table, origin


# ------------------------------------------------------------------------ question sources


def load_source(dataset: str, local: Path | None = None, revision: str | None = None):
    """One question source (an OCR2 `dataset` value) as {split: Dataset}, plus its origin."""
    if dataset not in QUESTION_SOURCES:
        raise ValleyError(f"ocr2.dataset: unknown source {dataset!r}; known: {', '.join(QUESTION_SOURCES)}")
    repo_id, name = QUESTION_SOURCES[dataset]
    if local is not None:
        single = _local_file(local, name)
        if single is not None:
            splits = {"train": read_table(single)}
        elif (local / name).is_dir():
            splits = {}
            for f in sorted((local / name).iterdir()):
                if f.suffix in (".jsonl", ".parquet"):
                    splits.setdefault(f.stem.split("-")[0], []).append(f)
            splits = {
                split: read_table(files[0]) if len(files) == 1 else _read_many(files) for split, files in splits.items()
            }
        else:
            raise ValleyError(f"{local}: OCR2 rows reference {dataset!r} but neither {name}.jsonl nor {name}/ is there")
        origin = Origin(repo_id, "local", str(single or local / name))
    else:
        splits, origin = _hub_source(dataset, repo_id, revision)
    if dataset == "taco":
        for split, table in splits.items():
            require_columns(table, TACO_COLUMNS, f"taco {split}")
    return splits, origin


def _read_many(files: list[Path]):
    datasets = _quiet_datasets()
    builder = "parquet" if files[0].suffix == ".parquet" else "json"
    return datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")


def _hub_source(dataset: str, repo_id: str, revision: str | None):
    datasets = _quiet_datasets()
    if dataset in ("taco", "apps"):  # script repos: read their data files directly
        patterns = ["ALL/*.parquet"] if dataset == "taco" else ["train.jsonl", "test.jsonl"]
        files, commit = _hub_files(repo_id, patterns, revision)
        by_split: dict[str, list[Path]] = {}
        for f in files:
            by_split.setdefault(f.name.split("-")[0].split(".")[0], []).append(f)
        splits = {split: _read_many(group) for split, group in by_split.items()}
    else:
        from huggingface_hub import HfApi

        commit = HfApi().dataset_info(repo_id, revision=revision).sha
        splits = dict(datasets.load_dataset(repo_id, revision=commit))
    return splits, Origin(repo_id, commit, f"hf://datasets/{repo_id}")


def question_text(dataset: str, row: dict) -> str:
    """The question of a source row, built as NeMo-Skills' prepare_questions.py does."""
    if dataset in ("taco", "apps"):
        return row["question"]
    if dataset == "code_contests":
        return row["description"]
    text = f"{row['description']}\n\nInput\n\n{row['input_format']}\n\nOutput\n\n{row['output_format']}\n\nExamples"
    for example in row.get("examples") or []:
        text += f"\n\nInput\n\n{example['input']}\n\nOutput\n\n{example['output']}"
    if row.get("note"):
        text += f"\n\nNote\n\n{row['note']}"
    return text


def source_row(sources: dict, dataset: str, split: str, index: str | int) -> dict:
    """`sources[dataset][split][int(index)]`, with a one-line error when the reference dangles."""
    try:
        table = sources[dataset][split]
        position = int(index)
        if not 0 <= position < len(table):
            raise IndexError
        return table[position]
    except (KeyError, IndexError, ValueError):
        raise ValleyError(
            f"ocr2 row references {dataset} {split}[{index}], which the loaded {dataset} does not have; "
            "check that the source dataset matches the OCR2 revision"
        ) from None


# ------------------------------------------------------------------------------------- LCB


def lcb_release_files(release: str) -> list[str]:
    """release_v5 -> test..test5.jsonl; v5 -> test5.jsonl; v4_v5 -> test4, test5; release_latest -> all."""
    tag = release.removeprefix("release_")
    if release == "release_latest":
        return list(_LCB_FILES)
    try:
        if release.startswith("release_v"):
            count = int(tag[1:])
            if not 1 <= count <= len(_LCB_FILES):
                raise ValueError
            return _LCB_FILES[:count]
        first, _, last = tag.partition("_")
        lo, hi = int(first.removeprefix("v")), int((last or first).removeprefix("v"))
        if not 1 <= lo <= hi <= len(_LCB_FILES):
            raise ValueError
    except ValueError:
        raise ValleyError(
            f"eval.lcb_release: unknown release {release!r}; use release_v1..release_v6, "
            "release_latest, v1..v6 or a range such as v4_v5"
        ) from None
    return _LCB_FILES[lo - 1 : hi]


def load_lcb_release(release: str, revision: str | None = None) -> tuple[list[dict], Origin]:
    """All rows of a LiveCodeBench release from the Hub's jsonl files (no loading script)."""
    import json

    files, commit = _hub_files(LCB_ID, lcb_release_files(release), revision)
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    return rows, Origin(LCB_ID, commit, f"hf://datasets/{LCB_ID}")
