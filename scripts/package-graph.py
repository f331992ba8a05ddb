#!/usr/bin/env python3
"""The package graph of valley/ and manager/, from their imports (lazy ones included).

Writes the graph into docs/architecture.md between its markers, or with --check fails when the
doc has drifted from the code or the code breaks the layering rules:
  * valley/ never imports manager/ (the workload images do not contain manager/);
  * the graph of parts has no cycle (a part is a package such as valley.data, or a top-level module);
  * inside manager/, a part imports only parts of its own tier or a lower one (MANAGER_TIERS);
  * render reads nothing: manager/render imports only RENDER_MAY_IMPORT (no module that reads
    files, the environment or the clock) and calls no open/print/input.

    python scripts/package-graph.py           # rewrite the graph in docs/architecture.md
    python scripts/package-graph.py --check   # what CI runs (tests/test_architecture.py)
"""

from __future__ import annotations

import argparse
import ast
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- package-graph:begin -->", "<!-- package-graph:end -->"
TOP = ("valley", "manager")
#: the order inside manager/, bottom-up: which runs and what is recorded, then the stages, then the
#: manifests, then what submits, watches and reads back, then the CLI
MANAGER_TIERS = (
    ("manager.images", "manager.mlflow_ui", "manager.profile", "manager.store", "manager.study", "manager.tracking"),
    ("manager.layout", "manager.selection"),
    ("manager.render",),
    ("manager.backends", "manager.compare", "manager.gitops", "manager.plan"),
    ("manager.cli",),
)
#: all manager/render may import: the spec, the stages, the profile's types, the names; everything
#: read from files (image digests, the profile) is resolved before render and passed in
RENDER_MAY_IMPORT = frozenset(
    {
        "__future__",
        "dataclasses",
        "re",
        "typing",
        "yaml",
        "manager.layout",
        "manager.profile",
        "manager.render",
        "valley.errors",
        "valley.spec",
        "valley.vocabulary",
    }
)
#: calls that read or write outside the function
RENDER_MAY_NOT_CALL = frozenset({"open", "print", "input"})


def part(module: str) -> str:
    """`valley.data.build` -> `valley.data`; `valley.spec` -> `valley.spec`; `manager.cli.runs` -> `manager.cli`."""
    names = module.split(".")
    return ".".join(names[:2])


def all_imports(path: Path) -> set[str]:
    """Every module the file imports, lazy imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def imports(path: Path) -> set[str]:
    return {name for name in all_imports(path) if name.split(".")[0] in TOP}


def package_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Part -> the parts it imports (itself and `__main__` shims excluded)."""
    graph: dict[str, set[str]] = {}
    for top in TOP:
        for path in sorted((root / top).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            if module.endswith(("__main__", "__init__")) and module.count(".") == 1:
                continue
            source = part(module.removesuffix(".__init__"))
            graph.setdefault(source, set()).update(
                target for target in map(part, imports(path)) if target != source and target not in TOP
            )
    return graph


def tier_problems(graph: dict[str, set[str]]) -> list[str]:
    """Parts of manager/ importing a higher tier, or missing from MANAGER_TIERS."""
    tier = {name: number for number, names in enumerate(MANAGER_TIERS) for name in names}
    found = [
        f"{source} has no place in the order inside manager/; add it to MANAGER_TIERS in scripts/package-graph.py"
        for source in sorted(graph)
        if source.startswith("manager.") and source not in tier
    ]
    found += [
        f"{source} imports {target}: inside manager/ a part imports only its own tier or lower ones"
        for source, targets in sorted(graph.items())
        if source in tier
        for target in sorted(targets)
        if tier.get(target, -1) > tier[source]
    ]
    return found


def render_problems(root: Path = ROOT) -> list[str]:
    """What manager/render imports or calls beyond what a pure function of its inputs needs."""
    found = []
    for path in sorted((root / "manager" / "render").rglob("*.py")):
        where = path.relative_to(root)
        for module in sorted(all_imports(path)):
            if part(module) not in RENDER_MAY_IMPORT and module.split(".")[0] not in RENDER_MAY_IMPORT:
                found.append(f"{where} imports {module}: render reads nothing (resolve it before render)")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in RENDER_MAY_NOT_CALL:
                found.append(f"{where}:{node.lineno} calls {node.func.id}(): render reads and writes nothing")
    return found


def problems(graph: dict[str, set[str]], root: Path = ROOT) -> list[str]:
    found = [
        f"{source} imports {target}: valley/ must never import manager/"
        for source, targets in graph.items()
        if source.startswith("valley")
        for target in sorted(targets)
        if target.startswith("manager")
    ]
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        found.append("import cycle: " + " -> ".join(error.args[1]))
    return found + tier_problems(graph) + render_problems(root)


def layers(graph: dict[str, set[str]]) -> list[list[str]]:
    """Parts grouped bottom-up: each layer imports only the layers below it."""
    sorter = TopologicalSorter(graph)
    sorter.prepare()
    result = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        result.append(ready)
        sorter.done(*ready)
    return result


def render(graph: dict[str, set[str]]) -> str:
    lines = [
        BEGIN,
        "",
        "Generated by `scripts/package-graph.py` from the imports; CI fails when it drifts.",
        "",
        "```mermaid",
        "flowchart BT",
    ]
    for source in sorted(graph):
        for target in sorted(graph[source]):
            lines.append(f"  {source.replace('.', '_')}[{source}] --> {target.replace('.', '_')}[{target}]")
    lines += ["```", "", "Layers, bottom-up (each imports only from the layers above it in this list):", ""]
    lines += [f"{number}. {', '.join(f'`{name}`' for name in layer)}" for number, layer in enumerate(layers(graph))]
    return "\n".join(lines + ["", END])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/architecture.md or the rules are off")
    args = parser.parse_args()
    graph = package_graph()
    broken = problems(graph)
    for line in broken:
        print(f"error: {line}", file=sys.stderr)
    if broken:
        return 1
    doc = DOC.read_text()
    start, end = doc.index(BEGIN), doc.index(END) + len(END)
    updated = doc[:start] + render(graph) + doc[end:]
    if args.check:
        if updated != doc:
            print("error: docs/architecture.md is out of date; run: python scripts/package-graph.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(updated)
    print(f"wrote the package graph of {len(graph)} parts to {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
