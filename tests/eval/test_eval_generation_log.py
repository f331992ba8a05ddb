"""The generations file a killed pod resumes from: no duplicates, no losses, torn tails dropped."""

import json

from manager.specs import EvalSpec
from valley.eval.generate import Generation, GenerationLog, pending_requests, request_seed
from valley.eval.prompts import Prompt


def row(qid, sid):
    return Generation(qid, sid, f"response {qid}/{sid}", "stop", 3)


def test_append_is_idempotent_and_survives_reopening(tmp_path):
    path = tmp_path / "generations.jsonl"
    log = GenerationLog(path)
    log.append([row("q1", 0), row("q1", 1)])
    log.append([row("q1", 1), row("q2", 0)])  # q1/1 again: skipped
    reopened = GenerationLog(path)
    assert [(g.question_id, g.sample_id) for g in reopened.rows] == [("q1", 0), ("q1", 1), ("q2", 0)]
    assert reopened.missing("q2", 3) == [1, 2] and reopened.missing("q1", 2) == []
    assert set(json.loads(path.read_text().splitlines()[0])) == {"question_id", "sample_id", "response", "finish_reason", "num_tokens"}


def test_a_torn_last_line_is_dropped_and_regenerated(tmp_path):
    path = tmp_path / "generations.jsonl"
    GenerationLog(path).append([row("q1", 0), row("q1", 1)])
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"question_id": "q2", "sample_id": 0, "resp')  # killed mid-write
    log = GenerationLog(path)
    assert log.done == {("q1", 0), ("q1", 1)}
    assert path.read_bytes() == whole  # the torn bytes are gone before anything is appended
    log.append([row("q2", 0)])
    assert [json.loads(line)["question_id"] for line in path.read_text().splitlines()] == ["q1", "q1", "q2"]


def test_pending_requests_ask_only_for_missing_samples(tmp_path):
    spec = EvalSpec(n_samples=3)
    log = GenerationLog(tmp_path / "generations.jsonl")
    log.append([row("q1", 0), row("q1", 2), row("q2", 0), row("q2", 1), row("q2", 2)])
    prompts = [Prompt("q1", (1, 2), 10), Prompt("q2", (1, 2), 10), Prompt("q3", (1,), 11)]
    requests = pending_requests(prompts, log, spec)
    assert [(r.prompt.question_id, r.sample_ids) for r in requests] == [("q1", (1,)), ("q3", (0, 1, 2))]
    # seeds are a function of the spec's seed and the request, never of which replica runs it
    assert requests[1].seed == request_seed(spec, "q3", (0, 1, 2)) != request_seed(EvalSpec(seed=1), "q3", (0, 1, 2))
