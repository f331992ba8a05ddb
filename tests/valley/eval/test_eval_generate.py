"""Generation bookkeeping: the file a killed pod resumes from (no duplicates, no losses, torn
tails dropped), the requests a rerun makes, and the sampling parameters it sends."""

import json

import pytest

from valley.engine import engine_kwargs
from valley.eval.generate import (
    Generation,
    GenerationLog,
    Request,
    pending_requests,
    request_seed,
    sampling_params,
    stop_token_ids,
)
from valley.eval.prompts import Prompt
from valley.spec import EvalSpec


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
    assert set(json.loads(path.read_text().splitlines()[0])) == {
        "question_id",
        "sample_id",
        "response",
        "finish_reason",
        "num_tokens",
    }


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


@pytest.mark.slow
@pytest.mark.vllm
def test_sampling_comes_from_the_spec_never_from_the_checkpoint(tmp_path):
    """The tiny students ship Qwen's generation_config (temperature 0.7, top_k 20, top_p 0.8,
    repetition_penalty 1.05): only its end-of-turn ids may reach the sampler."""
    (tmp_path / "generation_config.json").write_text(
        json.dumps({"eos_token_id": [7, 9], "temperature": 0.7, "top_k": 20, "top_p": 0.8, "repetition_penalty": 1.05})
    )
    spec = EvalSpec(temperature=0.6, top_p=0.95, seed=3)
    request = Request(Prompt("q1", (1, 2, 3), 500), (1, 3), request_seed(spec, "q1", (1, 3)))
    params = sampling_params(request, spec, stop_token_ids(tmp_path))
    assert (params.n, params.temperature, params.top_p, params.max_tokens) == (2, 0.6, 0.95, 500)
    assert params.top_k in (0, -1) and params.repetition_penalty == 1.0 and params.min_p == 0.0
    assert params.seed == request.seed and params.stop_token_ids == [7, 9] and not params.stop  # no "###"
    kwargs = engine_kwargs(tmp_path, spec)
    assert kwargs["generation_config"] == "vllm" and kwargs["max_model_len"] == spec.max_model_len
    assert kwargs["seed"] == 3 and engine_kwargs(tmp_path, spec, rank=2)["seed"] == 5  # distinct per replica
