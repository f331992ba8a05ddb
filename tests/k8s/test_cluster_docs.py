"""docs/cluster.md's YAML is real: every block parses, and the wrapper kustomization and the Flux
Job patch it shows do what the text says when built with kustomize."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.k8s.kustomize_builds import ROOT, build

DOC = (ROOT / "docs" / "cluster.md").read_text()
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC, re.S)


def rendered_job(name: str, component: str) -> dict:
    labels = {"app.kubernetes.io/part-of": "valley", "app.kubernetes.io/component": component}
    pod = {"restartPolicy": "Never", "containers": [{"name": "main", "image": "valley-trainer:x"}]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {"suspend": True, "template": {"metadata": {"labels": labels}, "spec": pod}},
    }


def block_with(marker: str) -> str:
    return next(block for block in BLOCKS if marker in block)


def test_every_yaml_block_parses():
    assert len(BLOCKS) >= 4
    for block in BLOCKS:
        assert list(yaml.safe_load_all(block))


def test_the_profile_example_validates_and_places_rendered_pods(valleyctl, tmp_path: Path):
    profile = tmp_path / "valley-cluster.yaml"
    profile.write_text(block_with("# valley-cluster.yaml"))
    docs = yaml.safe_load_all(valleyctl(["render", "--size", "10k", "--model", "llama", "--profile", profile]).stdout)
    pods = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in ("Job", "Deployment")
    }
    for gpu in ("train", "eval"):
        assert pods[gpu]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pods[gpu]["tolerations"]
    assert pods["train"]["priorityClassName"] == "valley-train" and pods["data"]["enableServiceLinks"] is False
    assert pods["grader"]["containers"][0]["image"].startswith("ghcr.io/your-org/valley-grader:")
    assert pods["train"]["containers"][0]["image"].startswith("ghcr.io/your-org/valley-trainer:")


def test_the_wrapper_kustomization_builds_the_rendered_runs(tmp_path: Path):
    k8s = tmp_path / "k8s"
    rendered = k8s / "experiments" / "valley"
    rendered.mkdir(parents=True)
    (rendered / "run.yaml").write_text(
        yaml.safe_dump_all([rendered_job("r-train", "train"), rendered_job("r-eval", "eval")])
    )
    (rendered / "kustomization.yaml").write_text(yaml.safe_dump({"resources": ["run.yaml"], "namespace": "valley"}))
    (k8s / "experiments" / "prod").mkdir()
    (k8s / "experiments" / "prod" / "kustomization.yaml").write_text(
        block_with("k8s/experiments/prod/kustomization.yaml")
    )
    assert {job["metadata"]["name"] for job in build(k8s / "experiments" / "prod")} == {"r-train", "r-eval"}


def test_the_flux_patch_marks_jobs_create_only(tmp_path: Path):
    flux = next(
        doc
        for doc in yaml.safe_load_all(block_with("kustomize.toolkit.fluxcd.io/ssa"))
        if doc["metadata"]["name"] == "valley-runs"
    )
    (tmp_path / "run.yaml").write_text(yaml.safe_dump_all([rendered_job("r-train", "train")]))
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": ["run.yaml"], "patches": flux["spec"]["patches"]})
    )
    (job,) = build(tmp_path)
    assert job["metadata"]["annotations"] == {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}


def test_argo_cd_ignores_the_fields_the_reconciler_and_kueue_change():
    app = next(
        doc for doc in yaml.safe_load_all(block_with("ignoreDifferences")) if doc["metadata"]["name"] == "valley-runs"
    )
    (rule,) = app["spec"]["ignoreDifferences"]
    assert rule["kind"] == "Job" and "/spec/suspend" in rule["jsonPointers"]
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]
