"""`valley data build`: one run's SFT subset, formatted for torchtune, with its lineage.

Reads top to bottom: load the corpus → pick the candidates for the subset kind (labelling
TACO-sourced responses by grading for RQ2) → rank them by the seed → take examples in that
order, measuring each with the student's tokenizer and applying the over-length policy →
write `train.jsonl`, `token_stats.json`, then `manifest.json` last (each via a temp name and a
rename). A directory whose manifest matches the inputs and whose files match their sha256 is
reused as is; the same inputs always give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from valley.data import sources, subsets, tokens
from valley.data.packaged import PACKAGED, PACKAGED_VERSION
from valley.errors import ValleyError
from valley.files import file_sha256, write_atomic
from valley.spec import DataSpec, RunSpec

MANIFEST = "manifest.json"
TRAIN_FILE = "train.jsonl"
STATS_FILE = "token_stats.json"
FORMAT = "valley-subset/1"

#: the user turn of every SFT example; its sha256 is part of the subset's identity
PROMPT_TEMPLATE = (
    "{question}{starter}\n\n"
    "Solve the problem in Python. Reason step by step inside <think> and </think>, then give the "
    "complete solution in a single ```python code block."
)
STARTER_TEMPLATE = "\n\nUse this starter code:\n```python\n{starter_code}\n```"


def sft_prompt(question: str, starter_code: str = "") -> str:
    starter = STARTER_TEMPLATE.format(starter_code=starter_code.rstrip()) if starter_code.strip() else ""
    return PROMPT_TEMPLATE.format(question=question.strip(), starter=starter)


# ----------------------------------------------------------------------------- corpus


@dataclass
class Corpus:
    """OCR2 rows plus the question sources they reference, loaded on first use."""

    source: str
    local: Path | None
    ocr2: object
    origins: list[sources.Origin]
    tables: dict = field(default_factory=dict)

    def question_source(self, dataset: str) -> dict:
        if dataset not in self.tables:
            splits, origin = sources.load_source(dataset, self.local)
            if self.source in PACKAGED and self.local == PACKAGED[self.source]:
                origin = _packaged_origin(self.source, origin.dataset)
            self.tables[dataset] = splits
            self.origins.append(origin)
        return self.tables[dataset]

    def source_row(self, row: dict) -> dict:
        self.question_source(row["dataset"])
        return sources.source_row(self.tables, row["dataset"], row["split"], row["index"])


def load_corpus(source: str, local: Path | None) -> Corpus:
    """`sample` and `mini` read the packaged corpus (or its mini tier) unless `local` is given;
    `ocr2` reads `local` or the Hub."""
    if source in PACKAGED:
        local = Path(local) if local else PACKAGED[source]
    ocr2, origin = sources.load_ocr2(Path(local) if local else None)
    if source in PACKAGED and local == PACKAGED[source]:
        origin = _packaged_origin(source, sources.OCR2_ID)
    return Corpus(source, Path(local) if local else None, ocr2, [origin])


def _packaged_origin(source: str, schema: str) -> sources.Origin:
    """The packaged corpus names itself (and its tier), not the dataset whose schema it borrows."""
    where = PACKAGED[source].relative_to(PACKAGED["sample"].parents[2])
    return sources.Origin(f"valley-{source} ({schema} schema)", PACKAGED_VERSION[source], str(where))


# ------------------------------------------------------------------------------- build


def build_subset(
    run_spec: RunSpec,
    tokenizer_dir: Path,
    out_dir: Path,
    local: Path | None = None,
    *,
    label_cache: Path | None = None,
    sandbox: str = "auto",
    workers: int | None = None,
    grader_url: str | None = None,
) -> Path:
    """Build `run_spec`'s subset into `out_dir`; returns the manifest path.

    Args:
        run_spec: a trained run (its `data` and `train.max_seq_len` are used).
        tokenizer_dir: the student model directory (tokenizer files with its chat template).
        out_dir: where train.jsonl, token_stats.json and manifest.json go.
        local: a corpus directory (sample-corpus layout) instead of the packaged sample / the Hub.
        label_cache: RQ2 label cache (default: `out_dir/../.labels`, shared by sibling subsets);
            token lengths are cached beside it in `out_dir/../.token-lengths/`.

    Raises:
        ValleyError: a baseline spec, a pool smaller than the size, a missing column, a malformed test.
    """
    data, train = run_spec.data, run_spec.train
    if data is None or train is None:
        raise ValleyError(f"run spec {run_spec.label}: a baseline run has no data to build")
    out_dir = Path(out_dir)
    inputs = {
        "format": FORMAT,
        "data": data.model_dump(mode="json"),
        "max_seq_len": train.max_seq_len,
        "tokenizer_sha256": tokens.tokenizer_digest(tokenizer_dir),
        "prompt_template_sha256": hashlib.sha256((PROMPT_TEMPLATE + STARTER_TEMPLATE).encode()).hexdigest(),
        "corpus_sha256": _local_corpus_digest(data.source, local),
    }
    manifest_path = out_dir / MANIFEST
    if _is_complete(manifest_path, inputs):
        return manifest_path
    manifest_path.unlink(missing_ok=True)  # a crash mid-rebuild must not leave an old manifest beside new files

    corpus = load_corpus(data.source, local)
    ids = list(corpus.ocr2["id"])
    if len(set(ids)) != len(ids):
        raise ValleyError("ocr2.id: the corpus has duplicate ids; every response needs a unique id")
    position = {example_id: number for number, example_id in enumerate(ids)}

    pool = _candidates(
        data, corpus, ids, position, label_cache or out_dir.parent / ".labels", sandbox, workers, grader_url
    )
    tokenizer = tokens.load_tokenizer(tokenizer_dir)
    length_cache = tokens.LengthCache(out_dir.parent / ".token-lengths" / f"{inputs['tokenizer_sha256'][:16]}.txt")
    chosen, lengths, dropped = _take(
        data, corpus, subsets.rank(pool.ids, data.seed), position, tokenizer, train.max_seq_len, length_cache
    )
    if len(chosen) < data.size:
        subsets.require_pool(
            data.size,
            len(chosen),
            data.subset,
            f"{len(pool.ids)} candidates, {len(dropped)} dropped for exceeding {train.max_seq_len} tokens",
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        TRAIN_FILE: "".join(json.dumps({"messages": messages}, ensure_ascii=False) + "\n" for _, messages in chosen),
        STATS_FILE: _dumps(tokens.token_stats(lengths, train.max_seq_len, dropped)),
    }
    for name, text in files.items():
        write_atomic(out_dir / name, text)
    manifest = {
        **inputs,
        "key": data.key,
        "subset": data.subset,
        "seed": data.seed,
        "sizes": {
            "requested": data.size,
            "written": len(chosen),
            "candidates": len(pool.ids),
            "corpus": len(ids),
            "dropped_over_length": len(dropped),
        },
        "sources": [vars(origin) for origin in corpus.origins],
        "parent": pool.parent | {"base_subset": run_spec.base.data.key if run_spec.base else None},
        "label_counts": pool.label_counts,
        "token_stats": json.loads(files[STATS_FILE]),
        "example_ids": [example_id for example_id, _ in chosen],
        "files": {name: hashlib.sha256(text.encode()).hexdigest() for name, text in files.items()},
    }
    write_atomic(manifest_path, _dumps(manifest))
    return manifest_path


@dataclass(frozen=True)
class Pool:
    ids: list[str]
    parent: dict
    label_counts: dict


def _candidates(
    data: DataSpec,
    corpus: Corpus,
    ids: list[str],
    position: dict[str, int],
    label_cache: Path,
    sandbox: str,
    workers: int | None,
    grader_url: str | None,
) -> Pool:
    """The ids this subset draws from, what they were drawn from, and their label counts."""
    if data.subset == "random":
        subsets.require_pool(data.size, len(ids), "random", f"{len(ids)} examples in the corpus")
        return Pool(ids, {"kind": "corpus", "ranking": "sha256(seed/id)", "examples": len(ids)}, {})

    parent = subsets.parent_ids(ids, data.source, data.seed)
    columns = corpus.ocr2.select_columns(["dataset", "difficulty"])
    taco_ids = [i for i in parent if columns[position[i]]["dataset"] == "taco"]
    taco_rows = {i: corpus.source_row(corpus.ocr2[position[i]]) for i in taco_ids}
    difficulty = {
        i: sources.difficulty_class(taco_rows[i].get("difficulty") or columns[position[i]]["difficulty"])
        for i in taco_ids
    }
    labels: dict[str, str] = {}
    if data.subset in ("correct", "incorrect"):
        from valley.data.labels import LabelItem, label_responses

        items = []
        for i in taco_ids:
            row = corpus.ocr2[position[i]]
            items.append(
                LabelItem(i, row["r1_generation"], taco_rows[i]["input_output"], f"taco {row['split']}[{row['index']}]")
            )
        labels = label_responses(items, label_cache, sandbox=sandbox, workers=workers, grader_url=grader_url)
        counts = dict(sorted(Counter(labels.values()).items()))
    else:
        counts = dict(sorted(Counter(d or "unlabelled" for d in difficulty.values()).items()))
    candidates = subsets.subset_candidates(data.subset, taco_ids, labels, difficulty)
    detail = f"{len(taco_ids)} TACO-sourced of {len(parent)} in the parent pool; " + ", ".join(
        f"{k} {v}" for k, v in counts.items()
    )
    subsets.require_pool(data.size, len(candidates), data.subset, detail)
    parent_size = subsets.PARENT_POOL[data.source] or len(ids)
    parent_spec = DataSpec(
        source=data.source, size=parent_size, subset="random", seed=data.seed, over_length=data.over_length
    )
    return Pool(
        candidates,
        {"kind": "random", "key": parent_spec.key, "examples": len(parent), "taco_sourced": len(taco_ids)},
        counts,
    )


def _take(
    data: DataSpec,
    corpus: Corpus,
    ordered: list[str],
    position: dict[str, int],
    tokenizer,
    max_seq_len: int,
    length_cache: tokens.LengthCache,
) -> tuple[list[tuple[str, list[dict]]], list[int], list[int]]:
    """Walk the ranking, keeping examples until `size` are in (dropping over-length ones under `drop`)."""
    chosen: list[tuple[str, list[dict]]] = []
    lengths: list[int] = []
    dropped: list[int] = []
    cursor = 0
    while len(chosen) < data.size and cursor < len(ordered):
        batch = ordered[cursor : cursor + data.size - len(chosen) + 64]
        cursor += len(batch)
        conversations = [_messages(corpus, corpus.ocr2[position[i]]) for i in batch]
        for example_id, messages, length in zip(
            batch, conversations, tokens.count_tokens(tokenizer, conversations, length_cache), strict=True
        ):
            if len(chosen) == data.size:
                break
            if length > max_seq_len and data.over_length == "drop":
                dropped.append(length)
                continue
            chosen.append((example_id, messages))
            lengths.append(length)
    return chosen, lengths, dropped


def _messages(corpus: Corpus, row: dict) -> list[dict]:
    question = row["question"]
    starter = ""
    if question == "-":
        source = corpus.source_row(row)
        question = sources.question_text(row["dataset"], source)
        starter = source.get("starter_code") or ""
    return [
        {"role": "user", "content": sft_prompt(question, starter)},
        {"role": "assistant", "content": row["r1_generation"]},
    ]


# ------------------------------------------------------------------------------ files


def _dumps(value: dict) -> str:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _local_corpus_digest(source: str, local: Path | None) -> str | None:
    """sha256 over a local corpus's files; None for the Hub (its revisions are in `sources`)."""
    root = Path(local) if local else PACKAGED.get(source)
    if root is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".parquet", ".json")):
        digest.update(f"{path.relative_to(root)}\0{file_sha256(path)}\0".encode())
    return digest.hexdigest()


def _is_complete(manifest_path: Path, inputs: dict) -> bool:
    if not manifest_path.exists():
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError:
        return False
    if any(manifest.get(k) != v for k, v in inputs.items()):
        return False
    return all(
        (manifest_path.parent / name).exists() and file_sha256(manifest_path.parent / name) == sha
        for name, sha in manifest.get("files", {}).items()
    )
