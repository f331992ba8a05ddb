"""The package graph in docs/architecture.md is the code's, and the code keeps the one-way rules."""

import subprocess
import sys

from tests.conftest import ROOT


def test_package_graph_doc_is_current_and_valley_never_imports_manager():
    result = subprocess.run(
        [sys.executable, "scripts/package-graph.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_the_check_names_a_forbidden_import(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("package_graph", ROOT / "scripts" / "package-graph.py")
    package_graph = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package_graph)
    for top in ("valley", "manager"):
        (tmp_path / top).mkdir()
        (tmp_path / top / "__init__.py").write_text("")
    (tmp_path / "manager" / "study.py").write_text("from valley.spec import RunSpec\n")
    (tmp_path / "valley" / "spec.py").write_text("def f():\n    from manager.study import x\n")
    graph = package_graph.package_graph(tmp_path)
    found = package_graph.problems(graph)
    assert "valley.spec imports manager.study: valley/ must never import manager/" in found
    assert any(line.startswith("import cycle:") for line in found)
