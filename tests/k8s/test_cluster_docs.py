"""docs/cluster.md's YAML is real: every block parses, and the wrapper kustomization and the Flux
Job patch it shows do what the text says when built with kustomize."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.k8s.kustomize_builds import K8S, ROOT, build

DOC = (ROOT / "docs" / "cluster.md").read_text()
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC, re.S)


def rendered_job(name: str, component: str) -> dict:
    labels = {"app.kubernetes.io/part-of": "valley", "app.kubernetes.io/component": component}
    pod = {"restartPolicy": "Never", "containers": [{"name": "main", "image": "valley-trainer:x"}]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels},
            "spec": {"suspend": True, "template": {"metadata": {"labels": labels}, "spec": pod}}}


def block_with(marker: str) -> str:
    return next(block for block in BLOCKS if marker in block)


def test_every_yaml_block_parses():
    assert len(BLOCKS) >= 4
    for block in BLOCKS:
        assert list(yaml.safe_load_all(block))


def test_the_wrapper_kustomization_places_rendered_jobs_on_gpu_nodes(tmp_path: Path):
    k8s = tmp_path / "k8s"
    (k8s / "experiments" / "valley").mkdir(parents=True)
    (k8s / "components").symlink_to(K8S / "components")
    rendered = k8s / "experiments" / "valley"
    (rendered / "run.yaml").write_text(yaml.safe_dump_all([rendered_job("r-train", "train"), rendered_job("r-eval", "eval")]))
    (rendered / "kustomization.yaml").write_text(yaml.safe_dump({"resources": ["run.yaml"], "namespace": "valley"}))
    (k8s / "experiments" / "prod").mkdir()
    (k8s / "experiments" / "prod" / "kustomization.yaml").write_text(block_with("k8s/experiments/prod/kustomization.yaml"))
    for job in build(k8s / "experiments" / "prod"):
        assert job["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_the_flux_patch_marks_jobs_create_only(tmp_path: Path):
    flux = next(doc for doc in yaml.safe_load_all(block_with("kustomize.toolkit.fluxcd.io/ssa")) if doc["metadata"]["name"] == "valley-runs")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump_all([rendered_job("r-train", "train")]))
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({"resources": ["run.yaml"], "patches": flux["spec"]["patches"]}))
    (job,) = build(tmp_path)
    assert job["metadata"]["annotations"] == {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}


def test_argo_cd_ignores_the_fields_the_reconciler_and_kueue_change():
    app = next(doc for doc in yaml.safe_load_all(block_with("ignoreDifferences")) if doc["metadata"]["name"] == "valley-runs")
    (rule,) = app["spec"]["ignoreDifferences"]
    assert rule["kind"] == "Job" and "/spec/suspend" in rule["jsonPointers"]
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]
