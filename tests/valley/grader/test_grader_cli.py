"""The grader's one command line, through both entry points (`valley grade|grader serve` and the
image's stdlib-only `python -m valley.grader`): the exit-code contract of valley.errors, with a
refused isolation and bad usage as configuration errors (3), each said in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

STDLIB_ENTRY = [
    sys.executable,
    "-I",
    "-S",
    "-c",
    f"import sys; sys.path.insert(0, {str(ROOT)!r}); from valley.grader.__main__ import main; sys.exit(main())",
]


def run(entry: str, args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    command = STDLIB_ENTRY if entry == "image" else [sys.executable, "-m", "valley"]
    if entry == "valley" and args[0] == "serve":
        args = ["grader", *args]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture
def files(tmp_path):
    problems, generations = tmp_path / "p.jsonl", tmp_path / "g.jsonl"
    problems.write_text(json.dumps({"question_id": "s", "tests": [["1\n", "1\n"]], "fn_name": None}) + "\n")
    generations.write_text(json.dumps({"question_id": "s", "sample_id": 0, "response": "```python\nprint(1)\n```"}))
    return ["--problems", problems, "--generations", generations, "--out", tmp_path / "v.jsonl"]


@pytest.mark.parametrize("entry", ["valley", "image"])
def test_bad_usage_and_a_refused_isolation_exit_3_with_one_line(entry, files, tmp_path):
    cases = {
        "unknown option": (["grade", *files, "--wokers", "2"], "--wokers"),
        "missing option": (["grade", "--problems", files[1]], "--generations"),
        "unknown sandbox": (["serve", "--sandbox", "gvisor"], "in-gvisor"),
        "missing input": (["grade", *files[:1], tmp_path / "absent.jsonl", *files[2:]], "absent.jsonl"),
        "not in gVisor (grade)": (["grade", *files, "--sandbox", "in-gvisor"], "not running under gVisor"),
        "not in gVisor (serve)": (["serve", "--port", "0", "--sandbox", "in-gvisor"], "not running under gVisor"),
    }
    for case, (args, named) in cases.items():
        result = run(entry, args)
        assert result.returncode == 3, (case, result.returncode, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and named in line, (case, line)
    assert not (tmp_path / "v.jsonl").exists()


@pytest.mark.parametrize("entry", ["valley", "image"])
def test_both_entry_points_share_one_definition_of_the_options(entry):
    grade, serve = run(entry, ["grade", "--help"]), run(entry, ["serve", "--help"])
    assert grade.returncode == serve.returncode == 0
    for option in ("--problems", "--generations", "--out", "--sandbox", "--workers", "--timeout-s", "--no-early-stop"):
        assert option in grade.stdout
    for option in ("--host", "--port", "--max-pending", "--max-request-mb", "in-gvisor"):
        assert option in serve.stdout
    assert "127.0.0.1" in serve.stdout and "(8000)" in serve.stdout
