"""RQ2 labels come from running the responses' code against TACO's tests through valley.grader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import require_tool
from valley.data.labels import LabelItem, label_responses
from valley.data.packaged import SAMPLE_DIR
from valley.errors import ValleyError

TACO = [json.loads(line) for line in (SAMPLE_DIR / "taco.jsonl").read_text().splitlines()]
OCR2 = [json.loads(line) for line in (SAMPLE_DIR / "ocr2.jsonl").read_text().splitlines()]


def items(rows: list[dict]) -> list[LabelItem]:
    return [
        LabelItem(r["id"], r["r1_generation"], TACO[int(r["index"])]["input_output"], f"taco train[{r['index']}]")
        for r in rows
    ]


def test_labels_agree_with_the_corpus_known_wrong_responses_and_are_cached(tmp_path: Path) -> None:
    labels = label_responses(items(OCR2), tmp_path / "cache", sandbox="process", workers=2)
    expected = {r["id"]: "correct" if r["judgement"] == "right" else "incorrect" for r in OCR2}
    assert labels == expected
    cached = sorted((tmp_path / "cache").rglob("*.json"))
    assert 0 < len(cached) <= len(OCR2)  # identical code for the same problem is graded once
    # fully cached: nothing is graded again, so even an unusable sandbox kind is never touched
    assert label_responses(items(OCR2), tmp_path / "cache", sandbox="no-such-sandbox") == expected


@pytest.mark.slow
@pytest.mark.runsc
def test_labels_under_runsc_agree(tmp_path: Path) -> None:
    require_tool("runsc", "apt-get install -y runsc")
    sample = OCR2[::8]
    labels = label_responses(items(sample), tmp_path / "cache", sandbox="runsc", workers=2)
    assert labels == {r["id"]: "correct" if r["judgement"] == "right" else "incorrect" for r in sample}


def test_malformed_input_output_is_one_line_naming_the_row(tmp_path: Path) -> None:
    row = OCR2[0]
    broken = LabelItem(row["id"], row["r1_generation"], '{"inputs": ["1\\n"]', f"taco train[{row['index']}]")
    with pytest.raises(ValleyError, match=r"^taco train\[0\]\.input_output: malformed \("):
        label_responses([broken], tmp_path)
    uneven = LabelItem(row["id"], row["r1_generation"], '{"inputs": ["1\\n"], "outputs": []}', "taco train[0]")
    with pytest.raises(ValleyError, match="inputs' and 'outputs' lists of equal length"):
        label_responses([uneven], tmp_path)


def test_correct_and_incorrect_subsets_through_the_cli(valley, write_spec, tokenizer_dir, tmp_path) -> None:
    judgement = {r["id"]: r["judgement"] for r in OCR2}
    chosen = {}
    for kind, verdict in (("correct", "right"), ("incorrect", "wrong")):
        out = tmp_path / "data" / kind
        valley(
            [
                "data",
                "build",
                "--run-spec",
                write_spec(100, kind),
                "--tokenizer",
                tokenizer_dir,
                "--out",
                out,
                "--sandbox",
                "process",
            ]
        )
        manifest = json.loads((out / "manifest.json").read_text())
        chosen[kind] = manifest["example_ids"]
        assert {judgement[i] for i in chosen[kind]} == {verdict}
        assert manifest["label_counts"] == {"correct": 199, "incorrect": 117}
    assert (tmp_path / "data" / ".labels").is_dir()  # shared by sibling subsets
    assert not set(chosen["correct"]) & set(chosen["incorrect"])


def test_build_with_a_malformed_taco_row_fails_in_one_line(valley, write_spec, tokenizer_dir, tmp_path) -> None:
    local = tmp_path / "corpus"
    shutil.copytree(SAMPLE_DIR, local)
    taco = list(TACO)
    taco[3] = {**taco[3], "input_output": "{not json"}
    (local / "taco.jsonl").write_text("".join(json.dumps(row) + "\n" for row in taco))
    result = valley(
        [
            "data",
            "build",
            "--run-spec",
            write_spec(50, "correct"),
            "--tokenizer",
            tokenizer_dir,
            "--out",
            tmp_path / "x",
            "--local",
            local,
            "--sandbox",
            "process",
        ],
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: taco train[3].input_output: malformed (")
    assert len(result.stderr.strip().splitlines()) == 1


def test_labels_through_the_grader_server_agree_and_in_process_grading_is_refused_on_a_cluster(
    tmp_path, monkeypatch
) -> None:
    """The data Job's path: a cluster build grades through the gVisor sidecar (`--grader-url`);
    grading in its own pod is refused."""
    from tests.valley.grader.test_grader_server import start_server

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc")  # only its presence is read
    with pytest.raises(ValleyError, match="--grader-url"):
        label_responses(items(OCR2), tmp_path / "refused", sandbox="process")
    server, url = start_server("--workers", "2")
    try:
        labels = label_responses(items(OCR2), tmp_path / "cache", workers=2, grader_url=url)
    finally:
        server.kill()
        server.wait()
    assert labels == {r["id"]: "correct" if r["judgement"] == "right" else "incorrect" for r in OCR2}
