"""The kit and `valleyctl render` agree: the paper's study rendered through the real CLI into a
GitOps directory with a cluster profile, wrapped as docs/cluster.md shows and built with kustomize,
validates strictly, is hardened, names only ServiceAccounts, PVCs and the RuntimeClass the kit
ships, is placed on GPU nodes, and every pod is governed by the kit's NetworkPolicies as intended.
The pod-isolation form (grader as a sidecar of the eval pod) is rendered through the API."""

from __future__ import annotations

import functools
import os

import pytest
import yaml

from tests.k8s.k8s_checks import assert_hardened, pod_specs, validate_strict
from tests.k8s.kustomize_builds import K8S, build, built, selector_matches


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[dict]:
    """k8s/experiments/{valley,prod} in a scratch GitOps tree, built with kustomize."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("gitops") / "k8s"
    (root / "experiments" / "prod").mkdir(parents=True)
    profile = root / "cluster.yaml"
    profile.write_text(
        yaml.safe_dump(
            {"pods": {kind: {"node_selector": {"nvidia.com/gpu.present": "true"}} for kind in ("train", "eval")}}
        )
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "manager",
            "render",
            "--study",
            "valley",
            "--queue",
            "valley",
            "--profile",
            str(profile),
            "--out",
            str(root / "experiments" / "valley"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(K8S.parent)},
    )
    (root / "experiments" / "prod" / "kustomization.yaml").write_text(yaml.safe_dump({"resources": ["../valley"]}))
    return build(root / "experiments" / "prod")


@functools.cache
def kit() -> dict[str, set[str]]:
    objects = built("overlays/prod")
    return {
        kind: {o["metadata"]["name"] for o in objects if o["kind"] == kind}
        for kind in ("ServiceAccount", "PersistentVolumeClaim", "RuntimeClass")
    }


def pod_isolation_objects() -> list[dict]:
    from manager.render import RenderContext, render_run
    from manager.study import study_runs

    run = next(r for r in study_runs("valley") if r.train is not None)
    pod = run.model_copy(update={"eval": run.eval.model_copy(update={"isolation": "pod"})})
    return render_run(pod, RenderContext(queue="valley"))


def pods_with_labels(objects: list[dict]):
    for obj in objects:
        for pod in pod_specs(obj):
            template = (
                obj["spec"]["template"] if obj["kind"] != "CronJob" else obj["spec"]["jobTemplate"]["spec"]["template"]
            )
            yield obj, pod, template["metadata"]["labels"]


def test_rendered_study_validates_and_uses_only_what_the_kit_ships(rendered):
    assert sum(obj["kind"] == "Job" for obj in rendered) >= 14
    for obj in rendered + pod_isolation_objects():
        validate_strict(obj)
    for obj, pod, _labels in pods_with_labels(rendered + pod_isolation_objects()):
        assert_hardened(pod)
        assert pod["serviceAccountName"] in kit()["ServiceAccount"], obj["metadata"]["name"]
        claims = {
            v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v
        }
        assert claims <= kit()["PersistentVolumeClaim"], claims
        if "runtimeClassName" in pod:
            assert pod["runtimeClassName"] in kit()["RuntimeClass"]


def test_rendered_train_and_eval_jobs_land_on_gpu_nodes_and_nothing_else_does(rendered):
    for obj, pod, labels in pods_with_labels(rendered):
        gpu = labels["app.kubernetes.io/component"] in ("train", "eval")
        assert ("nodeSelector" in pod) == gpu, obj["metadata"]["name"]
        tolerated = {t["key"] for t in pod.get("tolerations", [])}
        assert tolerated == ({"nvidia.com/gpu"} if gpu else set()), obj["metadata"]["name"]
        if gpu:
            assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true", obj["metadata"]["name"]


def test_every_rendered_pod_is_governed_by_the_kit_network_policies(rendered):
    """Which of the kit's policies select each rendered pod: the right ones, and the grader none that allow egress."""
    policies = [p for p in built("overlays/prod") if p["kind"] == "NetworkPolicy"]
    expected = {
        "data": {"valley-default-deny", "valley-allow-dns", "valley-train", "valley-train-model-proxy"},
        "train": {"valley-default-deny", "valley-allow-dns", "valley-train"},
        "eval": {"valley-default-deny", "valley-allow-dns", "valley-eval"},
        "grader": {"valley-default-deny", "valley-grader"},
    }
    seen = set()
    for obj, _pod, labels in pods_with_labels(rendered + pod_isolation_objects()):
        component = labels["app.kubernetes.io/component"]
        seen.add(component)
        selecting = {p["metadata"]["name"] for p in policies if selector_matches(p["spec"]["podSelector"], labels)}
        assert selecting == expected[component], (obj["metadata"]["name"], selecting)
    assert seen == set(expected)


def test_the_launcher_role_may_create_every_kind_render_emits(rendered):
    role = next(o for o in built("base") if o["kind"] == "Role" and o["metadata"]["name"] == "valley-launcher")
    creatable = {
        (g, r)
        for rule in role["rules"]
        if "create" in rule["verbs"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    resources = {
        "Job": "jobs",
        "ConfigMap": "configmaps",
        "Service": "services",
        "Deployment": "deployments",
        "NetworkPolicy": "networkpolicies",
    }
    for obj in rendered + pod_isolation_objects():
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        assert obj["kind"] in resources, f"render emits {obj['kind']}: the launcher Role cannot create it"
        assert (group, resources[obj["kind"]]) in creatable, obj["kind"]


def test_default_install_lets_only_data_pods_reach_the_hub(rendered):
    """dev (no proxy): data pods get HTTPS to public addresses; no other rendered pod gets any
    egress beyond the cluster. prod (model-proxy): that policy is gone, data pods use the proxy."""
    for overlay, hub_policies in (
        ("overlays/dev", {"valley-data-hub"}),
        ("overlays/prod", {"valley-train-model-proxy"}),
    ):
        policies = [p for p in built(overlay) if p["kind"] == "NetworkPolicy"]
        for obj, _pod, labels in pods_with_labels(rendered + pod_isolation_objects()):
            selecting = [p for p in policies if selector_matches(p["spec"]["podSelector"], labels)]
            outside = {
                p["metadata"]["name"]
                for p in selecting
                for rule in p["spec"].get("egress", [])
                for peer in rule.get("to", [])
                if "ipBlock" in peer
                or "namespaceSelector" in peer
                and "podSelector" in peer
                and peer["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "valley-model-proxy"
            }
            expected = hub_policies if labels["app.kubernetes.io/component"] == "data" else set()
            assert outside == expected, (overlay, obj["metadata"]["name"], outside)
