"""`valley data build` through the real CLI on the sample corpus."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from valley.data.packaged import SAMPLE_DIR
from valley.data.subsets import rank


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def build(valley, spec: Path, tokenizer_dir: Path, out: Path, *extra, check: bool = True):
    return valley(
        ["data", "build", "--run-spec", spec, "--tokenizer", tokenizer_dir, "--out", out, *extra], check=check
    )


def test_random_subsets_are_nested_and_sized(valley, write_spec, tokenizer_dir, tmp_path) -> None:
    ids = {}
    for size in (40, 120, 300):
        out = tmp_path / f"r{size}"
        build(valley, write_spec(size), tokenizer_dir, out)
        ids[size] = manifest(out)["example_ids"]
        assert len(ids[size]) == size == len((out / "train.jsonl").read_text().splitlines())
    assert ids[40] == ids[120][:40] and ids[120] == ids[300][:120]
    assert manifest(tmp_path / "r40")["parent"]["kind"] == "corpus"


def test_the_ranking_depends_only_on_the_seed_and_the_ids() -> None:
    pool = [f"id-{n}" for n in range(500)]
    assert rank(pool, 3) == rank(list(reversed(pool)), 3)  # independent of row order
    assert rank(pool, 3)[:50] != rank(pool, 4)[:50]


def test_rebuild_is_byte_identical_and_manifest_hashes_every_file(valley, write_spec, tokenizer_dir, tmp_path) -> None:
    spec = write_spec(120, over_length="drop", max_seq_len=700)
    build(valley, spec, tokenizer_dir, tmp_path / "a")
    build(valley, spec, tokenizer_dir, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["manifest.json", "token_stats.json", "train.jsonl"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    recorded = manifest(tmp_path / "a")
    for name, sha in recorded["files"].items():
        assert hashlib.sha256((tmp_path / "a" / name).read_bytes()).hexdigest() == sha
    assert recorded["sizes"]["written"] == 120 and recorded["sizes"]["dropped_over_length"] > 0
    stats = recorded["token_stats"]
    assert stats["dropped"] == recorded["sizes"]["dropped_over_length"]
    assert stats["examples_seen"] == 120 + stats["dropped"] and stats["max"] > 700  # dropped ones are profiled too
    assert recorded["sources"][0]["revision"] == "valley-sample-1"


def test_rerun_reuses_a_complete_subset_and_rebuilds_a_tampered_one(write_spec, tokenizer_dir, tmp_path) -> None:
    from valley.data.build import build_subset
    from valley.spec import RunSpec

    spec = RunSpec.from_json(write_spec(40).read_text())
    path = build_subset(spec, tokenizer_dir, tmp_path / "s")
    first = path.stat().st_mtime_ns
    assert build_subset(spec, tokenizer_dir, tmp_path / "s").stat().st_mtime_ns == first
    (tmp_path / "s" / "train.jsonl").write_text("tampered\n")
    build_subset(spec, tokenizer_dir, tmp_path / "s")
    assert (tmp_path / "s" / "train.jsonl").read_text() != "tampered\n"


def test_easy_and_hard_subsets_are_disjoint_and_follow_the_paper_mapping(
    valley, write_spec, tokenizer_dir, tmp_path
) -> None:
    taco = [json.loads(line) for line in (SAMPLE_DIR / "taco.jsonl").read_text().splitlines()]
    ocr2 = {row["id"]: row for row in map(json.loads, (SAMPLE_DIR / "ocr2.jsonl").read_text().splitlines())}
    chosen = {}
    for kind in ("easy", "hard"):
        build(valley, write_spec(100, kind), tokenizer_dir, tmp_path / kind)
        chosen[kind] = manifest(tmp_path / kind)["example_ids"]
        labels = {taco[int(ocr2[i]["index"])]["difficulty"] for i in chosen[kind]}
        assert labels <= ({"EASY", "MEDIUM"} if kind == "easy" else {"MEDIUM_HARD", "HARD", "VERY_HARD"})
    assert not set(chosen["easy"]) & set(chosen["hard"])
    assert manifest(tmp_path / "hard")["label_counts"] == {"easy": 167, "hard": 120, "unlabelled": 29}


def test_mini_source_reads_only_the_mini_tier_and_records_it(valley, write_spec, tokenizer_dir, tmp_path) -> None:
    mini = {row["id"] for row in map(json.loads, (SAMPLE_DIR / "mini" / "ocr2.jsonl").read_text().splitlines())}
    build(valley, write_spec(100, "hard", source="mini"), tokenizer_dir, tmp_path / "hard")
    built = manifest(tmp_path / "hard")
    assert set(built["example_ids"]) <= mini and len(built["example_ids"]) == 100
    assert built["label_counts"] == {"easy": 604, "hard": 232}
    assert {(s["dataset"], s["revision"]) for s in built["sources"]} == {
        ("valley-mini (nvidia/OpenCodeReasoning-2 schema)", "valley-mini-1"),
        ("valley-mini (BAAI/TACO schema)", "valley-mini-1"),
    }


def test_pool_too_small_is_one_line_with_the_counts(valley, write_spec, tokenizer_dir, tmp_path) -> None:
    result = build(valley, write_spec(200, "hard"), tokenizer_dir, tmp_path / "x", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: data.size: the hard subset needs 200 examples but its pool has 120 (316 TACO-sourced of 316 "
        "in the parent pool; easy 167, hard 120, unlabelled 29); use data.size <= 120"
    ]
    assert not (tmp_path / "x" / "manifest.json").exists()
    result = build(valley, write_spec(400), tokenizer_dir, tmp_path / "y", check=False)
    assert "needs 400 examples but its pool has 316" in result.stderr


def test_missing_column_is_one_line_naming_it(valley, write_spec, tokenizer_dir, tmp_path) -> None:
    local = tmp_path / "corpus"
    shutil.copytree(SAMPLE_DIR, local)
    rows = [json.loads(line) for line in (local / "ocr2.jsonl").read_text().splitlines()]
    (local / "ocr2.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "r1_generation"}) + "\n" for r in rows)
    )
    result = build(valley, write_spec(40), tokenizer_dir, tmp_path / "x", "--local", local, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ocr2: missing column(s) r1_generation;")
    assert len(result.stderr.strip().splitlines()) == 1


def test_train_jsonl_loads_through_torchtune_chat_dataset(valley, write_spec, tokenizer_dir, tmp_path) -> None:
    from torchtune.datasets import chat_dataset
    from torchtune.models.qwen2_5 import qwen2_5_tokenizer

    build(valley, write_spec(40), tokenizer_dir, tmp_path / "s")
    tokenizer = qwen2_5_tokenizer(
        path=str(tokenizer_dir / "vocab.json"), merges_file=str(tokenizer_dir / "merges.txt"), max_seq_len=1024
    )
    dataset = chat_dataset(
        tokenizer=tokenizer,
        source="json",
        data_files=str(tmp_path / "s" / "train.jsonl"),
        conversation_style="openai",
        conversation_column="messages",
        split="train",
    )
    assert len(dataset) == 40
    sample = dataset[0]
    trained = [t for t, label in zip(sample["tokens"], sample["labels"], strict=True) if label != -100]
    assert 0 < len(trained) < len(sample["tokens"])  # the prompt is masked, the response is trained on
    assert "<think>" in tokenizer.decode(trained)
