"""`valleyctl render --out DIR`: a run's (or a study's) manifests as a kustomize directory
for a GitOps repo, and `--check`: does DIR hold exactly what would be rendered?

One file per run (`<run.name>.yaml`; the name carries the spec hash, so a changed spec is
a new file with new Job names), one per shared data Job (`shared-<job>.yaml`: the student
fetches, LiveCodeBench windows and subset builds the runs need, each once) plus
`kustomization.yaml`. Files this command wrote carry a
header line; on rewrite, such files no longer rendered are removed, other files are left.
"""

from __future__ import annotations

from pathlib import Path

from manager.render import RenderContext, is_shared, render_run, to_yaml
from valley.files import write_atomic
from valley.spec import RunSpec
from valley.vocabulary import APP_INSTANCE, label

HEADER = "# rendered by `valleyctl render`; edit the spec, not this file\n"


def render_tree(runs: list[RunSpec], ctx: RenderContext) -> dict[str, str]:
    """Relative path -> file content (pure)."""
    import yaml

    files: dict[str, str] = {}
    shared: dict[str, list[dict]] = {}
    for run in runs:
        objects = render_run(run, ctx)
        files[f"{run.name}.yaml"] = HEADER + to_yaml([obj for obj in objects if not is_shared(obj)])
        for obj in filter(is_shared, objects):
            group = shared.setdefault(f"shared-{label(obj, APP_INSTANCE)}.yaml", [])
            if obj not in group:
                group.append(obj)
    files.update({name: HEADER + to_yaml(objects) for name, objects in shared.items()})
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": ctx.namespace,
        "resources": sorted(files),
    }
    files["kustomization.yaml"] = HEADER + yaml.safe_dump(kustomization, sort_keys=False)
    return files


def _ours(directory: Path) -> dict[str, str]:
    """The files in `directory` this command wrote (by their header)."""
    if not directory.is_dir():
        return {}
    found = {}
    for path in sorted(directory.glob("*.yaml")):
        text = path.read_text()
        if text.startswith(HEADER):
            found[path.name] = text
    return found


def differences(files: dict[str, str], directory: Path) -> list[str]:
    """Lines naming each file that is missing, changed or no longer rendered."""
    present = _ours(directory)
    lines = []
    for name in sorted(set(files) | set(present)):
        path = directory / name
        if name not in present:
            lines.append(f"missing  {path}")
        elif name not in files:
            lines.append(f"stale    {path}")
        elif present[name] != files[name]:
            lines.append(f"changed  {path}")
    return lines


def write_tree(files: dict[str, str], directory: Path) -> list[str]:
    """Make `directory` match `files`; the lines of what changed."""
    changes = differences(files, directory)
    for name, text in files.items():
        if not (directory / name).is_file() or (directory / name).read_text() != text:
            write_atomic(directory / name, text)
    for name in _ours(directory):
        if name not in files:
            (directory / name).unlink()
    return changes
