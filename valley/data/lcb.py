"""LiveCodeBench problems for evaluation, in the dataset's own schema, filtered to a date window."""

from __future__ import annotations

import json
from pathlib import Path

from valley.data.packaged import PACKAGED
from valley.data.sources import LCB_COLUMNS, load_lcb_release
from valley.errors import ValleyError
from valley.grader.lcb import decode_private_tests
from valley.spec import EvalSpec


def load_lcb_problems(eval_spec: EvalSpec, *, path: Path | None = None) -> list[dict]:
    """LCB rows whose `contest_date` lies in [eval_spec.date_start, eval_spec.date_end].

    `path` (a .jsonl of LCB rows) wins; else `source=sample|mini` reads the packaged sample (or its mini tier) and
    `source=livecodebench` downloads `eval_spec.lcb_release` from the Hub. Rows keep the real
    schema (`private_test_cases` still encoded); each is checked to decode before it is returned.
    """
    if path is not None:
        rows = _read_jsonl(Path(path))
    elif eval_spec.source in PACKAGED:
        rows = _read_jsonl(PACKAGED[eval_spec.source] / "lcb.jsonl")
    else:
        rows, _ = load_lcb_release(eval_spec.lcb_release)
    start, end = eval_spec.date_start.isoformat(), eval_spec.date_end.isoformat()
    selected = [row for row in rows if start <= str(row["contest_date"])[:10] <= end]
    if not selected:
        raise ValleyError(
            f"eval.date_start/date_end: no LiveCodeBench problem has a contest_date in {start}..{end} "
            f"({len(rows)} problems read); widen the window or pick another lcb_release"
        )
    for row in selected:
        evaluation_sample(row)
    return selected


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValleyError(f"{path}:{number}: not a JSON object ({error.msg}); fix or remove that line") from None
        missing = [c for c in LCB_COLUMNS if c not in row]
        if missing:
            raise ValleyError(f"{path}:{number}: missing LiveCodeBench column(s) {', '.join(missing)}")
        rows.append(row)
    return rows


def evaluation_sample(row: dict) -> dict:
    """Public + private tests as {"inputs", "outputs", "fn_name"}, like lcb_runner's get_evaluation_sample."""
    try:
        tests = json.loads(row["public_test_cases"]) + decode_private_tests(row["private_test_cases"])
        fn_name = json.loads(row["metadata"] or "{}").get("func_name")
    except Exception as error:
        raise ValleyError(
            f"lcb {row.get('question_id')}: test cases do not decode ({error}); "
            "the row is not in LiveCodeBench's format"
        ) from None
    return {"inputs": [t["input"] for t in tests], "outputs": [t["output"] for t in tests], "fn_name": fn_name}
