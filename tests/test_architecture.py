"""The package graph in docs/architecture.md is the code's, and the code keeps the one-way rules."""

import subprocess
import sys

from tests.conftest import ROOT


def test_package_graph_doc_is_current_and_valley_never_imports_manager():
    result = subprocess.run(
        [sys.executable, "scripts/package-graph.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def load_package_graph():
    import importlib.util

    spec = importlib.util.spec_from_file_location("package_graph", ROOT / "scripts" / "package-graph.py")
    package_graph = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package_graph)
    return package_graph


def tree(root, files: dict[str, str]):
    for top in ("valley", "manager"):
        (root / top).mkdir(exist_ok=True)
        (root / top / "__init__.py").write_text("")
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)


def test_the_check_names_a_forbidden_import(tmp_path):
    package_graph = load_package_graph()
    tree(
        tmp_path,
        {
            "manager/study.py": "from valley.spec import RunSpec\n",
            "valley/spec.py": "def f():\n    from manager.study import x\n",
        },
    )
    graph = package_graph.package_graph(tmp_path)
    found = package_graph.problems(graph, tmp_path)
    assert "valley.spec imports manager.study: valley/ must never import manager/" in found
    assert any(line.startswith("import cycle:") for line in found)


def test_the_check_keeps_the_order_inside_manager(tmp_path):
    package_graph = load_package_graph()
    tree(
        tmp_path,
        {
            "manager/render/__init__.py": "",
            "manager/render/job.py": "def f():\n    from manager.backends.kube import Kube\n",
            "manager/backends/__init__.py": "",
            "manager/backends/kube.py": "",
            "manager/scheduler.py": "",
        },
    )
    found = package_graph.problems(package_graph.package_graph(tmp_path), tmp_path)
    assert (
        "manager.render imports manager.backends: inside manager/ a part imports only its own tier or lower ones"
        in found
    )
    assert any(line.startswith("manager.scheduler has no place in the order inside manager/") for line in found)


def test_the_check_keeps_render_from_reading(tmp_path):
    package_graph = load_package_graph()
    tree(
        tmp_path,
        {
            "manager/render/__init__.py": "",
            "manager/render/job.py": (
                "import os\nfrom manager.layout import Stage\n\n"
                "def images():\n    from manager.images import image_refs\n"
                "    return open('images/digests.json').read()\n"
            ),
        },
    )
    found = package_graph.render_problems(tmp_path)
    assert found == [
        "manager/render/job.py imports manager.images: render reads nothing (resolve it before render)",
        "manager/render/job.py imports os: render reads nothing (resolve it before render)",
        "manager/render/job.py:6 calls open(): render reads and writes nothing",
    ]
