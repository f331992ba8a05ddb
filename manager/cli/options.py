"""The options `valleyctl` commands share, declared once so their names, defaults and help agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from manager.backends import Executor, ReadExecutor
from valley.spec import Isolation

StudyOpt = Annotated[str, typer.Option("--study", help="Study: valley (the paper's grid) or mini (local demo).")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the result as one JSON document on stdout (progress goes to stderr).")
]
SizeOpt = Annotated[Optional[str], typer.Option("--size", help="Data size (1k, 10k, 30k, 6k, 4k, 300) or 'baseline'.")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="Student preset: qwen, llama, tiny-qwen, tiny-llama.")]
SubsetOpt = Annotated[
    Optional[str], typer.Option("--subset", help="Subset kind: random, correct, incorrect, easy, hard.")
]
FromOpt = Annotated[Optional[str], typer.Option("--from", help="Continue from this run's checkpoint, e.g. qwen-30k.")]
RunOpt = Annotated[Optional[list[str]], typer.Option("--run", help="A run by label or name (repeatable).")]
OffGridOpt = Annotated[
    bool, typer.Option("--off-grid", help="Allow a --model/--size cell the study's grid lacks (a new run).")
]
NodesOpt = Annotated[Optional[int], typer.Option("--nodes", min=1, help="Spread training over N nodes (Indexed Job).")]
IsolationOpt = Annotated[
    Optional[Isolation],
    typer.Option(
        "--isolation",
        help="Where the grader's gVisor runs: split (grader pods under gvisor) or pod (the eval pod under "
        "gvisor-nvproxy, grader as a sidecar). A new spec, hence a new run name.",
    ),
]
QueueOpt = Annotated[Optional[str], typer.Option("--queue", help="Kueue LocalQueue for the Jobs.")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", envvar="VALLEY_NAMESPACE", help="Kubernetes namespace.")]
TrackingOpt = Annotated[
    Optional[str],
    typer.Option("--tracking-uri", help="MLflow for records (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)."),
]
ClusterTrackingOpt = Annotated[str, typer.Option("--cluster-tracking-uri", help="MLflow address the pods use.")]
ExecutorOpt = Annotated[
    Executor, typer.Option("--executor", help="k8s (Jobs on the cluster) or local (subprocesses here).")
]
RunExecutorOpt = Annotated[
    Optional[Executor],
    typer.Option(
        "--executor",
        help="k8s or local; default: where the run was launched (its MLflow record), else k8s.",
        show_default=False,
    ),
]
ReadExecutorOpt = Annotated[
    ReadExecutor,
    typer.Option(
        "--executor", help="k8s: add Job states; local: MLflow only; auto: Jobs when a cluster is configured."
    ),
]
ProfileOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--profile",
        envvar="VALLEY_PROFILE",
        help="Cluster profile: a YAML file (registry, images, node placement) or a kit profile's name, e.g. cpu "
        "(docs/cluster.md).",
    ),
]
#: where compare writes the valley plot and its JSON (the launch of a local study compares there too)
COMPARE_OUT = Path(".valley/compare")
CompareOutOpt = Annotated[Path, typer.Option("--out", help="Where the valley plot and compare JSON are written.")]
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str) -> float:
    """A duration: 90s, 30m, 48h, 2d (a bare number is seconds)."""
    found = _DURATION.match(text.strip())
    if found is None or float(found[1]) <= 0:
        raise typer.BadParameter(f"--timeout: {text!r} is not a duration; write e.g. 90s, 30m, 48h or 2d")
    return float(found[1]) * _UNIT_SECONDS[found[2]]


WaitTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        parser=seconds,
        metavar="DURATION",
        help="With --wait: stop waiting after this long (90s, 30m, 48h, 2d).",
    ),
]
FollowTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        parser=seconds,
        metavar="DURATION",
        help="With --follow: stop following after this long (90s, 30m, 48h).",
    ),
]
RunArg = Annotated[str, typer.Argument(help="Run label (qwen-10k) or name (valley-qwen-10k-1a2b3c4d).")]
