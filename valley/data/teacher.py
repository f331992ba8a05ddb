"""Teacher generation: k sampled responses per question through vLLM, as OCR2-schema rows.

The paper's answers came from two teachers (DeepSeek-R1-0528, KAT-V1-40B) with about seven
responses per question; this regenerates or extends such a pool. Questions are OCR2's (one per
`question_id`, the first row, as NeMo-Skills does), rendered with the SFT prompt and the
teacher's own chat template. Output rows keep OCR2's columns (`question` stays "-" and is
re-joined by `dataset`/`split`/`index`, so `valley data build --local` reads the file like
OCR2) plus `teacher` and `finish_reason`.

Resumable: each question's k rows are appended together and flushed, a half-written last line
is cut off on restart, and questions that already have their rows are skipped. Every request
carries an explicit seed derived from (seed, question_id), so a rerun draws the same samples.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from valley.errors import ValleyError

DEFAULT_BATCH = 32


def question_rows(corpus, limit: int | None = None) -> list[dict]:
    """One OCR2 row per question_id (the first), in corpus order."""
    seen: set[str] = set()
    rows = []
    for row in corpus.ocr2.select_columns(
        ["question_id", "question", "dataset", "split", "index", "difficulty", "source", "license"]
    ):
        if row["question_id"] not in seen:
            seen.add(row["question_id"])
            rows.append(row)
            if limit is not None and len(rows) == limit:
                break
    return rows


def request_seed(seed: int, question_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{question_id}".encode()).digest()[:4], "big") >> 1


def completed_questions(out: Path) -> set[str]:
    """question_ids already in `out`; a trailing partial line (a crash mid-write) is removed."""
    if not out.exists():
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        out.write_bytes(data)
    return {json.loads(line)["question_id"] for line in data.decode().splitlines() if line.strip()}


def generate(
    teacher: Path | str,
    out: Path,
    *,
    k: int,
    source: str = "sample",
    local: Path | None = None,
    limit: int | None = None,
    temperature: float = 0.6,
    top_p: float = 0.95,
    max_model_len: int = 32768,
    seed: int = 0,
    tensor_parallel_size: int = 1,
    batch: int = DEFAULT_BATCH,
) -> int:
    """Append k responses for every pending question to `out`; returns how many rows were written."""
    from vllm import SamplingParams

    from valley.data.build import _messages, load_corpus
    from valley.engine import load_engine
    from valley.grader.extract import extract_code
    from valley.spec import EvalSpec

    if k < 1:
        raise ValleyError(f"-k: need at least one response per question, got {k}")
    corpus = load_corpus(source, local)
    done = completed_questions(out)
    pending = [row for row in question_rows(corpus, limit) if row["question_id"] not in done]
    if not pending:
        return 0
    engine_spec = EvalSpec(
        max_model_len=max_model_len, seed=seed, tensor_parallel_size=tensor_parallel_size, data_parallel_size=1
    )
    llm = load_engine(Path(teacher), engine_spec)
    tokenizer = llm.get_tokenizer()
    teacher_name = str(teacher)
    written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(pending), batch):
        group = pending[start : start + batch]
        prompts, params = [], []
        for row in group:
            user = _messages(corpus, {**row, "r1_generation": ""})[0]
            text = tokenizer.apply_chat_template([user], add_generation_prompt=True, tokenize=False)
            ids = tokenizer.encode(text, add_special_tokens=False)
            if len(ids) >= max_model_len:
                raise ValleyError(
                    f"--max-model-len: {max_model_len} leaves no room for a response to question "
                    f"{row['question_id']} ({len(ids)} prompt tokens)"
                )
            prompts.append({"prompt_token_ids": ids})
            params.append(
                SamplingParams(
                    n=k,
                    temperature=temperature,
                    top_p=top_p,
                    top_k=0,
                    min_p=0.0,
                    repetition_penalty=1.0,
                    max_tokens=max_model_len - len(ids),
                    seed=request_seed(seed, row["question_id"]),
                )
            )
        results = llm.generate(prompts, params, use_tqdm=False)
        lines = []
        for row, result in zip(group, results, strict=True):
            for number, completion in enumerate(result.outputs):
                text = completion.text
                lines.append(
                    json.dumps(
                        {
                            "id": hashlib.sha256(
                                f"{teacher_name}/{seed}/{row['question_id']}/{number}".encode()
                            ).hexdigest()[:32],
                            "question_id": row["question_id"],
                            "question": row["question"],
                            "r1_generation": text,
                            "qwq_critique": "",
                            "solution": extract_code(text),
                            "judgement": "",
                            "pass_rate": "",
                            "source": row["source"],
                            "license": row["license"],
                            "dataset": row["dataset"],
                            "split": row["split"],
                            "difficulty": row["difficulty"],
                            "index": row["index"],
                            "teacher": teacher_name,
                            "finish_reason": completion.finish_reason,
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
        with open(out, "a") as handle:
            handle.write("".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
        written += len(lines)
    return written
