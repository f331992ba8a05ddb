"""vLLM generation that survives being killed: every finished problem is appended to
`generations.jsonl` (one write + fsync), and a rerun generates only the missing samples.

One engine per data-parallel replica. On a GPU pod with `eval.data_parallel_size > 1` each
replica is a worker process that owns `eval.tensor_parallel_size` GPUs, takes every dp-th
problem and sends its finished rows back to this process, the only writer of the file.
Sampling parameters are always sent explicitly (the model's generation_config never
overrides them); each request's seed derives from `eval.seed` and the question id, so a
problem samples the same way whichever replica runs it.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

from valley.engine import load_engine
from valley.eval.prompts import Prompt
from valley.spec import EvalSpec

GENERATIONS = "generations.jsonl"


@dataclass(frozen=True)
class Generation:
    question_id: str
    sample_id: int
    response: str
    #: vLLM's reason: "stop" (ended by EOS within the budget) or "length" (hit the budget)
    finish_reason: str
    num_tokens: int


# --------------------------------------------------------------------------- the file


class GenerationLog:
    """Append-only JSONL of generations; a torn last line (killed mid-write) is dropped on open."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: list[Generation] = list(self._read_and_repair())
        self.done: set[tuple[str, int]] = {(g.question_id, g.sample_id) for g in self.rows}

    def _read_and_repair(self) -> Iterator[Generation]:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end = 0
        rows = []
        for line in data.splitlines(keepends=True):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("torn line")
                rows.append(Generation(**json.loads(line)))
            except (ValueError, TypeError):
                break  # everything after a torn write is the torn write
            good_end += len(line)
        if good_end < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)
                os.fsync(handle.fileno())
        yield from rows

    def append(self, generations: Iterable[Generation]) -> None:
        new = [g for g in generations if (g.question_id, g.sample_id) not in self.done]
        if not new:
            return
        payload = "".join(json.dumps(asdict(g), ensure_ascii=False) + "\n" for g in new).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        self.rows += new
        self.done |= {(g.question_id, g.sample_id) for g in new}

    def missing(self, question_id: str, n_samples: int) -> list[int]:
        return [s for s in range(n_samples) if (question_id, s) not in self.done]


# ---------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    prompt: Prompt
    sample_ids: tuple[int, ...]
    seed: int


def request_seed(eval_spec: EvalSpec, question_id: str, sample_ids: tuple[int, ...]) -> int:
    key = f"{eval_spec.seed}:{question_id}:{','.join(map(str, sample_ids))}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") >> 1


def pending_requests(prompts: list[Prompt], log: GenerationLog, eval_spec: EvalSpec) -> list[Request]:
    requests = []
    for prompt in prompts:
        missing = tuple(log.missing(prompt.question_id, eval_spec.n_samples))
        if missing:
            requests.append(Request(prompt, missing, request_seed(eval_spec, prompt.question_id, missing)))
    return requests


def stop_token_ids(model_dir: Path) -> list[int]:
    """End-of-turn ids from the checkpoint's generation_config.json (Qwen: <|im_end|> and
    <|endoftext|>; Llama 3.1: <|eot_id|>, <|eom_id|>, <|end_of_text|>). Only these are taken
    from it: its sampling defaults never apply (see engine_kwargs)."""
    path = Path(model_dir) / "generation_config.json"
    if not path.exists():
        return []
    eos = json.loads(path.read_text()).get("eos_token_id")
    return [eos] if isinstance(eos, int) else list(eos or [])


def sampling_params(request: Request, eval_spec: EvalSpec, stop_ids: list[int]):
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(
        n=len(request.sample_ids),
        stop_token_ids=stop_ids,
        temperature=eval_spec.temperature,
        top_p=eval_spec.top_p,
        top_k=0,
        min_p=0.0,
        repetition_penalty=1.0,
        max_tokens=request.prompt.max_tokens,
        seed=request.seed,
        output_kind=RequestOutputKind.FINAL_ONLY,
    )


def run_requests(llm, requests: list[Request], model_dir: Path, eval_spec: EvalSpec) -> Iterator[list[Generation]]:
    """Feed every request to the engine and yield each problem's samples as soon as it finishes
    (continuous batching across problems; nothing waits for a whole batch)."""
    engine = llm.llm_engine
    stop_ids = stop_token_ids(model_dir)
    by_id = {}
    for number, request in enumerate(requests):
        request_id = f"{number}:{request.prompt.question_id}"
        by_id[request_id] = request
        engine.add_request(
            request_id,
            {"prompt_token_ids": list(request.prompt.token_ids)},
            sampling_params(request, eval_spec, stop_ids),
        )
    while engine.has_unfinished_requests():
        for output in engine.step():
            if not output.finished:
                continue
            request = by_id.pop(output.request_id)
            yield [
                Generation(
                    question_id=request.prompt.question_id,
                    sample_id=request.sample_ids[completion.index],
                    response=completion.text,
                    finish_reason=completion.finish_reason or "length",
                    num_tokens=len(completion.token_ids),
                )
                for completion in output.outputs
            ]


def generate(
    prompts: list[Prompt], model_dir: Path, eval_spec: EvalSpec, out_dir: Path, *, llm=None
) -> list[Generation]:
    """Generate every missing (problem, sample) into `out_dir/generations.jsonl`; return all rows.

    Pass `llm` to reuse an engine across several evaluations of the same model directory.
    """
    log = GenerationLog(Path(out_dir) / GENERATIONS)
    requests = pending_requests(prompts, log, eval_spec)
    if requests:
        finished = _finished_rows(llm, requests, model_dir, eval_spec)
        with _progress(len(prompts) * eval_spec.n_samples, len(log.done)) as advance:
            for rows in finished:
                log.append(rows)
                advance(len(rows))
    wanted = {(p.question_id, s) for p in prompts for s in range(eval_spec.n_samples)}
    return sorted(
        (g for g in log.rows if (g.question_id, g.sample_id) in wanted), key=lambda g: (g.question_id, g.sample_id)
    )


def _finished_rows(llm, requests, model_dir, eval_spec) -> Iterator[list[Generation]]:
    """Start the engine(s) now, so the progress bar times generation only; yield finished problems."""
    if llm is None and eval_spec.data_parallel_size > 1 and _has_gpus():
        return _data_parallel(requests, model_dir, eval_spec)
    return run_requests(llm or load_engine(model_dir, eval_spec), requests, model_dir, eval_spec)


def _has_gpus() -> bool:
    import torch

    return torch.cuda.is_available()


# -------------------------------------------------------------------- data parallel


def _replica(rank: int, gpus: list[str], requests: list[Request], model_dir: Path, eval_spec: EvalSpec, queue) -> None:
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    try:
        llm = load_engine(model_dir, eval_spec, rank=rank)
        for rows in run_requests(llm, requests, model_dir, eval_spec):
            queue.put(("rows", rows))
        queue.put(("done", rank))
    except BaseException as error:  # reported to the writer, which fails the eval
        queue.put(("error", f"replica {rank}: {type(error).__name__}: {error}"))


REPLICA_POLL_S = 30


def _data_parallel(requests: list[Request], model_dir: Path, eval_spec: EvalSpec) -> Iterator[list[Generation]]:
    import multiprocessing
    from queue import Empty

    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    tp, dp = eval_spec.tensor_parallel_size, eval_spec.data_parallel_size
    if len(gpus) < tp * dp:
        raise RuntimeError(f"eval: tensor_parallel_size x data_parallel_size = {tp * dp} GPUs, pod has {len(gpus)}")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(
            target=_replica,
            args=(rank, gpus[rank * tp : (rank + 1) * tp], requests[rank::dp], model_dir, eval_spec, queue),
        )
        for rank in range(dp)
    ]
    for worker in workers:
        worker.start()
    try:
        running = dp
        while running:
            try:
                kind, payload = queue.get(timeout=REPLICA_POLL_S)
            except Empty:  # a replica killed outright (OOM, signal) never reports: notice it
                dead = [str(w.exitcode) for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(
                        f"eval: a vLLM replica died (exit code {', '.join(dead)}); rerun to resume"
                    ) from None
                continue
            if kind == "rows":
                yield payload
            elif kind == "done":
                running -= 1
            else:
                raise RuntimeError(payload)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
            worker.join()


@contextmanager
def _progress(total: int, done: int) -> Iterator:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()
    ) as progress:
        task = progress.add_task("generating", total=total, completed=done)
        yield lambda count: progress.advance(task, count)
