"""Stores of evaluated runs for the tests that read a study back (compare, the MLflow UI, the
MLflow Project): runs created by the control plane's own `Tracker.ensure_run`, evaluations
recorded in their eval runs through `valley.eval.record.record_eval`, the code `valley eval` uses; only the
generations and verdicts are synthetic, with known pass rates."""

import numpy as np
import pytest

from manager.tracking import Tracker
from valley.eval.metrics import eval_metrics, per_problem_table
from valley.eval.record import eval_tags, record_eval, write_jsonl
from valley.tracking import stage_run
from valley.vocabulary import EVAL_KIND, TRAIN_KIND

PROBLEMS = [{"question_id": f"lcb-{i:03d}", "difficulty": ("easy", "medium", "hard")[i % 3]} for i in range(60)]

#: the pass rate each synthetic run is built to score: a valley, then a rise
RATES = {
    "qwen-baseline": 0.12,
    "qwen-1k": 0.05,
    "qwen-10k": 0.15,
    "qwen-30k": 0.27,
    "llama-baseline": 0.10,
    "llama-1k": 0.03,
    "llama-10k": 0.09,
    "llama-30k": 0.30,
    "qwen-correct-6k": 0.18,
    "qwen-incorrect-6k": 0.18,
    "qwen-easy-4k": 0.30,
    "qwen-hard-4k": 0.08,
    "qwen-30k+correct-6k": 0.35,
    "qwen-30k+incorrect-6k": 0.35,
    "qwen-30k+easy-4k": 0.45,
    "qwen-30k+hard-4k": 0.20,
    # the mini study: untrained students score 0, then the trained ones climb
    "tiny-qwen-baseline": 0.0,
    "tiny-qwen-40": 0.02,
    "tiny-qwen-120": 0.12,
    "tiny-qwen-400": 0.30,
    "tiny-llama-baseline": 0.0,
    "tiny-llama-40": 0.0,
    "tiny-llama-120": 0.10,
    "tiny-llama-400": 0.45,
    "tiny-qwen-correct-120": 0.15,
    "tiny-qwen-incorrect-120": 0.05,
    "tiny-qwen-hard-120": 0.03,
    "tiny-qwen-easy-120": 0.10,
}


def record_training(tracker, run_id: str, steps: int = 20) -> str:
    """A `<label>/train` run with a falling loss, as `valley train` records one; its id."""
    import mlflow
    from mlflow.entities import Metric

    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", tracker.uri)
        env.setenv("MLFLOW_RUN_ID", run_id)
        with stage_run(TRAIN_KIND) as train:
            history = [
                Metric(name, value, 0, step)
                for step in range(1, steps + 1)
                for name, value in (("train/loss", 3.0 / step**0.5), ("train/lr", 8e-5 * min(1, step / 2)))
            ]
            mlflow.MlflowClient().log_batch(train.info.run_id, metrics=history)
    return train.info.run_id


def record_synthetic(tracker, run, out_root, eval_spec=None, rates=RATES, *, train=False):
    """The run recorded and evaluated (and, `train`, trained: what the UI test shows); its id."""
    run_id, _ = tracker.ensure_run(run)
    if train and run.train is not None:
        record_training(tracker, run_id)
    # problem i passes each of its 4 samples with probability rate + noise; correct/incorrect share a seed
    rng = np.random.default_rng(sum(map(ord, run.label.replace("incorrect", "correct"))))
    generations, verdicts = [], []
    for problem in PROBLEMS:
        p = min(1.0, max(0.0, rates[run.label] + rng.normal(0, 0.05)))
        for sample in range(4):
            passed = bool(rng.random() < p)
            generations.append(
                {
                    "question_id": problem["question_id"],
                    "sample_id": sample,
                    "response": "<think>x",
                    "finish_reason": "stop" if sample < 3 else "length",
                    "num_tokens": 100,
                }
            )
            verdicts.append(
                {
                    "question_id": problem["question_id"],
                    "sample_id": sample,
                    "passed": passed,
                    "verdict": "pass" if passed else "wrong_answer",
                }
            )
    out = out_root / run_id
    write_jsonl(out / "generations.jsonl", generations)
    write_jsonl(out / "verdicts.jsonl", verdicts)
    spec = run.model_copy(update={"eval": eval_spec}) if eval_spec else run
    metrics = eval_metrics(PROBLEMS, generations, verdicts)
    with pytest.MonkeyPatch.context() as env:  # what the control plane hands the eval workload
        env.setenv("MLFLOW_TRACKING_URI", tracker.uri)
        env.setenv("MLFLOW_RUN_ID", run_id)
        with stage_run(EVAL_KIND) as eval_run:  # as `valley eval` does
            assert record_eval(
                eval_run,
                metrics,
                eval_tags(spec, chat_template_hash="abc", engine_seeds=[0]),
                out,
                per_problem_table(PROBLEMS, generations, verdicts),
            )
    return run_id


def new_store(root):
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return uri, Tracker(uri)
