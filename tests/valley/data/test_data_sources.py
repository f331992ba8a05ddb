"""Loaders: OCR2 question re-join from each source, TACO difficulty mapping, LCB releases and windows."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from manager.study import MINI_EVAL
from valley.data import sources
from valley.data.build import _messages, load_corpus
from valley.data.lcb import evaluation_sample, load_lcb_problems
from valley.data.packaged import SAMPLE_DIR
from valley.errors import ValleyError
from valley.grader.lcb import decode_private_tests, encode_private_tests
from valley.spec import EvalSpec


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def ocr2_row(dataset: str, split: str, index: int, n: int) -> dict:
    return {
        "id": f"r{n}",
        "question_id": f"q{n}",
        "question": "-",
        "r1_generation": "<think>x</think>\n```python\npass\n```",
        "dataset": dataset,
        "split": split,
        "index": str(index),
        "difficulty": "",
        "source": "",
        "license": "",
    }


def test_questions_rejoin_from_every_source_like_nemo_skills(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "ocr2.jsonl",
        [
            ocr2_row("taco", "test", 1, 0),
            ocr2_row("apps", "train", 0, 1),
            ocr2_row("code_contests", "valid", 0, 2),
            ocr2_row("open-r1/codeforces", "train", 0, 3),
        ],
    )
    write_jsonl(
        tmp_path / "taco" / "test.jsonl",
        [
            {"question": "first", "starter_code": "", "input_output": "{}", "difficulty": "EASY"},
            {"question": "second", "starter_code": "def f(x):\n\t", "input_output": "{}", "difficulty": "VERY_HARD"},
        ],
    )
    write_jsonl(tmp_path / "apps.jsonl", [{"question": "apps question", "starter_code": ""}])
    write_jsonl(tmp_path / "code_contests" / "valid.jsonl", [{"description": "cc description"}])
    write_jsonl(
        tmp_path / "codeforces.jsonl",
        [
            {
                "description": "D",
                "input_format": "I",
                "output_format": "O",
                "note": "N",
                "examples": [{"input": "1", "output": "2"}],
            }
        ],
    )
    corpus = load_corpus("ocr2", tmp_path)
    users = [_messages(corpus, corpus.ocr2[n])[0]["content"] for n in range(4)]
    assert users[0].startswith("second\n\nUse this starter code:\n```python\ndef f(x):\n```")
    assert users[1].startswith("apps question\n\nSolve the problem in Python.")
    assert users[2].startswith("cc description\n\n")
    assert users[3].startswith(
        "D\n\nInput\n\nI\n\nOutput\n\nO\n\nExamples\n\nInput\n\n1\n\nOutput\n\n2\n\nNote\n\nN\n\n"
    )
    assert {o.dataset for o in corpus.origins} == {
        sources.OCR2_ID,
        sources.TACO_ID,
        sources.APPS_ID,
        sources.CODE_CONTESTS_ID,
        sources.CODEFORCES_ID,
    }


def test_a_dangling_reference_is_one_line(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "ocr2.jsonl", [ocr2_row("taco", "train", 99, 0)])
    write_jsonl(
        tmp_path / "taco.jsonl", [{"question": "q", "starter_code": "", "input_output": "{}", "difficulty": "EASY"}]
    )
    corpus = load_corpus("ocr2", tmp_path)
    with pytest.raises(ValleyError, match=r"references taco train\[99\], which the loaded taco does not have"):
        _messages(corpus, corpus.ocr2[0])


@pytest.mark.parametrize(
    "label, expected",
    [
        ("EASY", "easy"),
        ("medium", "easy"),
        ("MEDIUM_HARD", "hard"),
        ("Hard", "hard"),
        ("VERY_HARD", "hard"),
        ("UNKNOWN_DIFFICULTY", None),
        ("", None),
        (None, None),
    ],
)
def test_taco_difficulty_maps_case_insensitively_to_the_papers_classes(label, expected) -> None:
    assert sources.difficulty_class(label) == expected


def test_lcb_release_tags_map_to_the_release_files() -> None:
    assert sources.lcb_release_files("release_v5") == [
        "test.jsonl",
        "test2.jsonl",
        "test3.jsonl",
        "test4.jsonl",
        "test5.jsonl",
    ]
    assert sources.lcb_release_files("v4_v5") == ["test4.jsonl", "test5.jsonl"]
    assert sources.lcb_release_files("v1") == ["test.jsonl"]
    assert len(sources.lcb_release_files("release_latest")) == 6
    with pytest.raises(ValleyError, match="eval.lcb_release: unknown release 'release_v9'"):
        sources.lcb_release_files("release_v9")


def test_sample_lcb_problems_are_filtered_to_the_window() -> None:
    all_rows = [json.loads(line) for line in (SAMPLE_DIR / "lcb.jsonl").read_text().splitlines()]
    problems = load_lcb_problems(EvalSpec(source="sample", date_start=date(2024, 8, 1), date_end=date(2025, 1, 31)))
    assert 0 < len(problems) < len(all_rows)
    # the mini study reads only the mini tier, never the sample's (or the paper's) problems
    assert {p["question_id"][:5] for p in load_lcb_problems(MINI_EVAL)} == {"mini-"}
    assert all("2024-08-01" <= p["contest_date"][:10] <= "2025-01-31" for p in problems)
    narrow = EvalSpec(source="sample", date_start=date(2024, 9, 1), date_end=date(2024, 9, 30))
    assert {p["contest_date"][:7] for p in load_lcb_problems(narrow)} == {"2024-09"}
    functional = next(p for p in problems if p["platform"] == "leetcode")
    sample = evaluation_sample(functional)
    assert sample["fn_name"] == json.loads(functional["metadata"])["func_name"]
    assert len(sample["inputs"]) == len(sample["outputs"]) == 10


def test_lcb_path_wins_and_bad_rows_are_one_line(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (SAMPLE_DIR / "lcb.jsonl").read_text().splitlines()]
    write_jsonl(tmp_path / "lcb.jsonl", rows[:3])
    assert len(load_lcb_problems(EvalSpec(date_start=date(2020, 1, 1)), path=tmp_path / "lcb.jsonl")) == 3
    write_jsonl(tmp_path / "bad.jsonl", [{k: v for k, v in rows[0].items() if k != "metadata"}])
    with pytest.raises(ValleyError, match=r"bad.jsonl:1: missing LiveCodeBench column\(s\) metadata"):
        load_lcb_problems(MINI_EVAL, path=tmp_path / "bad.jsonl")
    with pytest.raises(ValleyError, match="no LiveCodeBench problem has a contest_date in 2030-01-01..2030-02-01"):
        load_lcb_problems(EvalSpec(source="sample", date_start=date(2030, 1, 1), date_end=date(2030, 2, 1)))


def test_lcb_private_tests_round_trip() -> None:
    tests = [
        {"input": "1 2\n", "output": "3\n", "testtype": "stdin"},
        {"input": "[1]", "output": "1", "testtype": "functional"},
    ]
    encoded = encode_private_tests(tests)
    assert not encoded.startswith("[")
    assert decode_private_tests(encoded) == tests
    assert decode_private_tests(json.dumps(tests)) == tests  # plain JSON is read as is


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The Hub cannot be reached here: serve a repo snapshot from a local dir through the same calls."""
    import huggingface_hub

    class Info:
        sha = "0123456789abcdef0123456789abcdef01234567"

    def snapshot_download(repo_id, repo_type, revision, allow_patterns):
        assert repo_type == "dataset" and revision == Info.sha
        return str(tmp_path / "hub" / repo_id)

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", lambda self, repo_id, revision=None: Info())
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return tmp_path / "hub"


def test_script_repos_are_read_from_their_data_files(fake_hub: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    taco = fake_hub / sources.TACO_ID / "ALL"
    taco.mkdir(parents=True)
    row = {"question": "q", "starter_code": "", "input_output": "{}", "difficulty": "HARD"}
    for split, count in (("train", 3), ("test", 1)):
        pq.write_table(pa.Table.from_pylist([row] * count), taco / f"{split}-00000-of-00001.parquet")
    splits, origin = sources.load_source("taco")
    assert {name: len(table) for name, table in splits.items()} == {"train": 3, "test": 1}
    assert origin.revision == "0123456789abcdef0123456789abcdef01234567"

    lcb = fake_hub / sources.LCB_ID
    lcb.mkdir(parents=True)
    sample = (SAMPLE_DIR / "lcb.jsonl").read_text().splitlines()
    for number, name in enumerate(sources.lcb_release_files("release_latest")):
        (lcb / name).write_text(sample[number] + "\n")
    rows, origin = sources.load_lcb_release("v4_v5")
    assert [r["question_id"] for r in rows] == [
        json.loads(sample[3])["question_id"],
        json.loads(sample[4])["question_id"],
    ]
    assert origin.dataset == "livecodebench/code_generation_lite"


def test_lcb_stage_writes_the_windowed_problems_eval_reads(valley, tmp_path: Path) -> None:
    from valley.spec import RunSpec

    spec = RunSpec(study="mini", model="tiny-qwen", eval=MINI_EVAL)
    spec_path = tmp_path / "run.json"
    spec_path.write_text(spec.to_json())
    out = tmp_path / "lcb" / "staged.jsonl"
    valley(["data", "lcb", "--run-spec", spec_path, "--out", out])
    staged = load_lcb_problems(MINI_EVAL, path=out)
    expected = load_lcb_problems(MINI_EVAL)
    assert [row["question_id"] for row in staged] == [row["question_id"] for row in expected]
    assert staged == expected
    assert not list(out.parent.glob(".*.tmp"))
