"""The cluster kit under k8s/: every overlay builds with the real kustomize, every object validates
against the official Kubernetes schema (strict), every pod is hardened, RBAC is namespaced and
least-privilege, and the NetworkPolicies allow exactly the paths docs/cluster.md describes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.k8s.k8s_checks import assert_hardened, pod_specs, validate_strict
from tests.k8s.kustomize_builds import (
    BUILDABLE,
    K8S,
    all_built_objects,
    built,
    kustomize_command,
    selector_matches,
)

SERVICE_ACCOUNTS = {
    "valley-train",
    "valley-eval",
    "valley-grader",
    "valley-reconciler",
    "valley-mlflow",
    "valley-launcher",
}
PVCS = {"valley-datasets", "valley-model-cache", "valley-checkpoints"}
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def kinds(objects) -> dict[tuple[str, str], dict]:
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}


@pytest.mark.parametrize("relative", BUILDABLE)
def test_every_object_validates_strictly(relative):
    objects = built(relative)
    assert objects, f"{relative} built nothing"
    for obj in objects:
        if obj["apiVersion"].startswith("kueue.x-k8s.io/"):
            # No offline schema for the Kueue CRDs: check the fields Kueue requires.
            assert obj["apiVersion"] == "kueue.x-k8s.io/v1beta2"
            required = {"LocalQueue": ["clusterQueue"], "ClusterQueue": ["resourceGroups"], "ResourceFlavor": []}[
                obj["kind"]
            ]
            assert all(field in obj.get("spec", {}) for field in required), obj
            continue
        validate_strict(obj)


@pytest.mark.parametrize("relative", BUILDABLE)
def test_every_pod_template_is_hardened(relative):
    for obj in built(relative):
        for pod in pod_specs(obj):
            is_reconciler = obj["metadata"]["name"] == "valley-reconciler"
            assert_hardened(pod, allow_service_account_token=is_reconciler)
            if not is_reconciler:
                assert pod["automountServiceAccountToken"] is False
            for container in pod["containers"] + pod.get("initContainers", []):
                assert container["securityContext"].get("readOnlyRootFilesystem") is True, container["name"]
            # What the namespace's Pod Security "restricted" level would reject at admission.
            assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod), obj["metadata"]["name"]
            for volume in pod.get("volumes", []):
                assert set(volume) - {"name"} <= RESTRICTED_VOLUME_TYPES, volume


def test_no_secret_value_is_shipped():
    for relative, obj in all_built_objects():
        assert obj["kind"] != "Secret", (
            f"{relative}: Secret {obj['metadata']['name']} ships a value; create it out of band"
        )
    for path in K8S.rglob("kustomization.yaml"):
        assert "secretGenerator" not in yaml.safe_load(path.read_text()), (
            f"{path} generates a Secret from inlined values"
        )


def test_every_yaml_file_is_part_of_a_build():
    """Nothing under k8s/ escapes the builds above (and so the hardening and schema checks); the
    cluster profiles in k8s/profiles are valleyctl's input, checked in test_cluster_cpu.py."""
    referenced = set()
    for path in K8S.rglob("kustomization.yaml"):
        spec = yaml.safe_load(path.read_text())
        for entry in spec.get("resources", []) + [p["path"] for p in spec.get("patches", []) if "path" in p]:
            referenced.add((path.parent / entry).resolve())
        referenced.add(path.resolve())
    for path in K8S.rglob("*.yaml"):
        if path.parent == K8S / "profiles":
            continue
        assert path.resolve() in referenced, f"{path.relative_to(K8S)} is not referenced by any kustomization"


def test_overlays_keep_everything_in_the_namespace_with_recommended_labels():
    for relative in ("overlays/dev", "overlays/prod", "overlays/cpu", "base"):
        for obj in built(relative):
            labels = obj["metadata"].get("labels", {})
            assert labels.get("app.kubernetes.io/part-of") == "valley", (relative, obj["kind"], obj["metadata"]["name"])
            if obj["kind"] not in ("Namespace", "RuntimeClass"):
                assert obj["metadata"].get("namespace") == "valley", (relative, obj["kind"], obj["metadata"]["name"])
        for path in K8S.rglob("kustomization.yaml"):
            assert "commonLabels" not in path.read_text(), f"{path}: use `labels:`, commonLabels is deprecated"


@pytest.mark.parametrize("relative", ["overlays/dev", "overlays/prod", "overlays/cpu"])
def test_the_contract_names_exist(relative):
    objects = kinds(built(relative))
    assert {name for kind, name in objects if kind == "ServiceAccount"} == SERVICE_ACCOUNTS
    claims = {name for kind, name in objects if kind == "PersistentVolumeClaim"}
    assert claims == PVCS | ({"valley-mlflow"} if relative == "overlays/cpu" else set())
    assert objects[("RuntimeClass", "gvisor")]["handler"] == "runsc"
    assert objects[("Service", "valley-mlflow")]["spec"]["ports"][0]["port"] == 5000
    namespace = objects[("Namespace", "valley")]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for kind, name in objects:
        if kind == "ServiceAccount":
            assert objects[(kind, name)]["automountServiceAccountToken"] is False


@pytest.mark.parametrize("relative", ["overlays/dev", "overlays/prod"])
def test_mlflow_server_proxies_artifacts_and_reads_secrets_as_files(relative):
    deployment = kinds(built(relative))[("Deployment", "valley-mlflow")]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"][:2] == ["sh", "-c"] and "exec mlflow server" in container["command"][2]
    args = container["args"]
    assert "--serve-artifacts" in args
    assert any(arg.startswith("--allowed-hosts=") and "valley-mlflow:*" in arg for arg in args)
    env = {item["name"]: item for item in container["env"]}
    assert env["MLFLOW_WORKERS"]["value"] == {"overlays/dev": "1", "overlays/prod": "2"}[relative]
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    for volume, secret in secrets.items():
        assert mounted[volume] == f"/var/run/secrets/{secret}" and mounted[volume] in container["command"][2]
    assert set(secrets.values()) == {"valley-mlflow-db", "valley-mlflow-s3"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    config_map = next(
        obj
        for obj in built(relative)
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].startswith("valley-mlflow")
    )
    assert config_map["data"]["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")


def test_dev_runs_its_own_stores_and_prod_does_not():
    dev, prod = kinds(built("overlays/dev")), kinds(built("overlays/prod"))
    assert ("StatefulSet", "valley-postgres") in dev and ("StatefulSet", "valley-minio") in dev
    assert not any(kind == "StatefulSet" for kind, _ in prod)
    init = dev[("Deployment", "valley-mlflow")]["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["create-bucket"]
    assert ("LocalQueue", "valley") in prod and ("LocalQueue", "valley") not in dev
    assert prod[("Deployment", "valley-mlflow")]["spec"]["replicas"] == 2


def test_reconciler_cronjob_runs_valleyctl_reconcile_with_its_namespace():
    cronjob = kinds(built("base"))[("CronJob", "valley-reconciler")]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "valley-reconciler"
    container = pod["containers"][0]
    assert container["command"] == ["valleyctl", "reconcile"]
    env = {item["name"]: item for item in container["env"]}
    assert env["VALLEY_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://valley-mlflow:5000"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


# --- RBAC -----------------------------------------------------------------------------------


def test_rbac_is_namespaced_and_least_privilege():
    for relative, obj in all_built_objects():
        assert obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"), (
            f"{relative}: nothing in valley needs cluster-wide RBAC"
        )
        if obj["kind"] != "Role":
            continue
        for rule in obj["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], obj["metadata"]["name"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
            assert not {"secrets", "roles", "rolebindings", "pods/exec"} & set(rule["resources"])


def rules_of(role: dict) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_reconciler_may_only_read_and_patch_jobs_and_record_gitops_runs():
    objects = kinds(built("base"))
    jobs = {("batch", "jobs", verb) for verb in ("get", "list", "watch", "patch")}
    run_records = {
        ("", "configmaps", verb) for verb in ("get", "list", "create")
    }  # `<run>-mlflow` for runs applied from git
    # which pod of an ended Job failed, with which exit code, and its logs (uploaded to the MLflow run)
    pods = {("", "pods", "get"), ("", "pods", "list"), ("", "pods/log", "get")}
    assert rules_of(objects[("Role", "valley-reconciler")]) == jobs | run_records | pods
    binding = objects[("RoleBinding", "valley-reconciler")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "valley-reconciler", "namespace": "valley"}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "valley-reconciler"}


def test_launcher_may_create_exactly_what_render_emits():
    rules = rules_of(kinds(built("base"))[("Role", "valley-launcher")])
    creatable = {(group, resource) for group, resource, verb in rules if verb == "create"}
    assert creatable == {
        ("batch", "jobs"),
        ("", "configmaps"),
        ("", "services"),
        ("apps", "deployments"),
        ("networking.k8s.io", "networkpolicies"),
    }
    assert ("", "pods/log", "get") in rules


# --- NetworkPolicies ------------------------------------------------------------------------

POD_LABELS = {
    "train": {"app.kubernetes.io/component": "train"},
    "data": {"app.kubernetes.io/component": "data"},
    "eval": {"app.kubernetes.io/component": "eval"},
    "grader": {"app.kubernetes.io/component": "grader"},
    "reconciler": {"app.kubernetes.io/component": "reconciler", "app.kubernetes.io/name": "valley-reconciler"},
    "mlflow": {"app.kubernetes.io/component": "tracking", "app.kubernetes.io/name": "valley-mlflow"},
    "postgres": {"app.kubernetes.io/component": "database", "app.kubernetes.io/name": "valley-postgres"},
    "minio": {"app.kubernetes.io/component": "artifact-store", "app.kubernetes.io/name": "valley-minio"},
}


def policies(relative: str) -> list[dict]:
    return [obj for obj in built(relative) if obj["kind"] == "NetworkPolicy"]


def selecting(relative: str, pod: str, direction: str) -> list[dict]:
    labels = {**POD_LABELS[pod], "app.kubernetes.io/part-of": "valley"}
    return [
        p
        for p in policies(relative)
        if direction in p["spec"]["policyTypes"] and selector_matches(p["spec"]["podSelector"], labels)
    ]


def egress_peers(relative: str, pod: str) -> set[str]:
    """Which valley pods (by POD_LABELS name) `pod` may open connections to, plus 'dns' and 'outside'."""
    peers = set()
    for policy in selecting(relative, pod, "Egress"):
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", [{}]):
                if "ipBlock" in peer:
                    peers.add("outside")
                elif peer.get("podSelector", {}).get("matchLabels", {}).get("k8s-app") == "kube-dns":
                    peers.add("dns")
                elif "podSelector" in peer:
                    peers |= {
                        name for name, labels in POD_LABELS.items() if selector_matches(peer["podSelector"], labels)
                    }
                    if "namespaceSelector" in peer:
                        peers.add("other-namespace")
    return peers


def ingress_peers(relative: str, pod: str) -> set[str]:
    peers = set()
    for policy in selecting(relative, pod, "Ingress"):
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", [{}]):
                peers |= {
                    name for name, labels in POD_LABELS.items() if selector_matches(peer.get("podSelector", {}), labels)
                }
    return peers


@pytest.mark.parametrize("relative", ["base", "overlays/dev", "overlays/prod"])
def test_default_deny_covers_every_pod(relative):
    deny = next(p for p in policies(relative) if p["metadata"]["name"] == "valley-default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


@pytest.mark.parametrize("relative", ["base", "overlays/dev", "overlays/prod"])
def test_grader_pods_have_no_egress_at_all(relative):
    assert egress_peers(relative, "grader") == set()
    grader_policy = next(p for p in policies(relative) if p["metadata"]["name"] == "valley-grader")
    assert grader_policy["spec"]["egress"] == [] and "Egress" in grader_policy["spec"]["policyTypes"]
    assert ingress_peers(relative, "grader") == {"eval"}


@pytest.mark.parametrize("relative", ["base", "overlays/dev", "overlays/prod"])
def test_workload_egress_is_exactly_mlflow_dns_and_their_peers(relative):
    assert egress_peers(relative, "eval") == {"mlflow", "dns", "grader"}
    assert egress_peers(relative, "train") == {"mlflow", "dns", "train"}
    data = egress_peers(relative, "data")  # the Hub: directly (base, dev) or through prod's model proxy
    assert data == {"mlflow", "dns", "train"} | ({"other-namespace"} if relative == "overlays/prod" else {"outside"})
    assert egress_peers(relative, "reconciler") == {"mlflow", "dns", "outside"}  # outside: the API server


@pytest.mark.parametrize("relative", ["base", "overlays/dev", "overlays/prod"])
def test_mlflow_accepts_only_workloads_and_reaches_only_its_stores(relative):
    assert ingress_peers(relative, "mlflow") == {"train", "data", "eval", "reconciler"}
    expected = {"dev": {"dns", "postgres", "minio"}, "prod": {"dns", "outside"}, "base": {"dns"}}[
        relative.split("/")[-1]
    ]
    assert egress_peers(relative, "mlflow") == expected


def test_stores_accept_only_mlflow_and_reach_nothing():
    for store in ("postgres", "minio"):
        assert ingress_peers("overlays/dev", store) == {"mlflow"}
        assert egress_peers("overlays/dev", store) == set()


def test_kustomize_reports_a_broken_kustomization(tmp_path: Path):
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    result = subprocess.run([*kustomize_command(), str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0 and "missing.yaml" in result.stderr
