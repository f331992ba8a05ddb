"""Rendered manifests: golden files, strict schema validation, the hardening baseline, and
the properties the cluster relies on (gates, failure policy, GPUs, gVisor, names)."""

from pathlib import Path

import pytest
import yaml

from manager.profile import ClusterProfile
from manager.render import RenderContext, render_run, to_yaml
from manager.selection import Selection, select
from manager.study import mini_study, valley_study
from tests.k8s.k8s_checks import assert_hardened, pod_specs, validate_strict
from valley.spec import RunSpec

GOLDEN = Path(__file__).parent / "golden"
CTX = RenderContext(run_id="0123456789abcdef0123456789abcdef")


PROFILE = ClusterProfile.model_validate(
    {
        "gvisor_runtime_class": "gvisor-cpu",
        "pods": {
            "train": {
                "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                "priority_class_name": "valley-train",
            },
            "eval": {
                "tolerations": [{"key": "dedicated", "value": "eval", "effect": "NoSchedule"}],
                "pod_overrides": {"hostIPC": False},
            },
            "data": {"node_selector": {"pool": "cpu"}},
        },
    }
)


def by_label(label: str, study=valley_study) -> RunSpec:
    return next(r for r in study() if r.label == label)


CASES = {
    "qwen-10k": lambda: (by_label("qwen-10k"), CTX),
    "qwen-30k+correct-6k": lambda: (by_label("qwen-30k+correct-6k"), CTX),
    "qwen-baseline": lambda: (by_label("qwen-baseline"), CTX),
    "llama-10k-2nodes-queue": lambda: (
        select(Selection(size="10k", model="llama", nodes=2))[0],
        RenderContext(run_id=CTX.run_id, queue="gpu-h100"),
    ),
    "qwen-10k-pod": lambda: (select(Selection(size="10k", model="qwen", isolation="pod"))[0], CTX),
    "qwen-10k-profile": lambda: (by_label("qwen-10k"), RenderContext(run_id=CTX.run_id, profile=PROFILE)),
    "tiny-qwen-40": lambda: (by_label("tiny-qwen-40", mini_study), CTX),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case, update_golden):
    run, ctx = CASES[case]()
    text = to_yaml(render_run(run, ctx))
    path = GOLDEN / f"{case}.yaml"
    if update_golden:
        path.write_text(text)
    assert path.exists(), f"{path} missing: run pytest {__file__} --update-golden"
    assert text == path.read_text(), (
        f"{case} differs from {path}; if intended, rerun with --update-golden and review the diff"
    )


def all_objects():
    runs = (
        valley_study()
        + mini_study()
        + [select(Selection(size="10k", model="qwen", isolation="pod"))[0]]
        + select(Selection(size="10k", model="llama", nodes=2))
    )
    return [
        obj
        for run in runs
        for ctx in (RenderContext(run_id="r", queue="q"), RenderContext(profile=PROFILE))
        for obj in render_run(run, ctx)
    ]


def test_every_object_is_strictly_valid_and_every_pod_hardened():
    objects = all_objects()
    assert len(objects) > 100
    for obj in objects:
        validate_strict(obj)
        for pod in pod_specs(obj):
            assert_hardened(pod)
            for c in pod["containers"] + pod.get("initContainers", []):
                assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert len(obj["metadata"]["name"]) <= 63


def jobs(run, ctx=CTX):
    """stage -> Job: the run's own (train, eval) and the shared ones it needs (fetch, lcb, data)."""
    return {
        o["metadata"]["labels"].get("valley.shared") or o["metadata"]["labels"]["app.kubernetes.io/component"]: o
        for o in render_run(run, ctx)
        if o["kind"] == "Job"
    }


def test_train_job_gpus_volumes_failure_policy_and_gate():
    run = by_label("qwen-10k")
    job = jobs(run)["train"]
    assert job["spec"]["suspend"] is True and jobs(run)["fetch"]["spec"]["suspend"] is False
    assert job["metadata"]["annotations"]["valley/needs"] == ",".join(
        jobs(run)[stage]["metadata"]["name"] for stage in ("fetch", "data")
    )
    pod = job["spec"]["template"]["spec"]
    train = pod["containers"][0]
    assert train["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert train["command"][:2] == ["valley", "train"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"valley-datasets", "valley-model-cache", "valley-checkpoints"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in train["volumeMounts"]
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "FailJob", "onExitCodes": {"containerName": "train", "operator": "In", "values": [3]}}
    assert rules[1]["action"] == "Ignore" and rules[1]["onPodConditions"][0]["type"] == "DisruptionTarget"
    env = {e["name"]: e for e in train["env"]}
    assert env["MLFLOW_RUN_ID"]["valueFrom"]["configMapKeyRef"]["name"] == f"{run.name}-mlflow"
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://valley-mlflow:5000"


def test_continued_run_trains_from_base_checkpoint_and_names_its_base():
    run = by_label("qwen-30k+correct-6k")
    job = jobs(run)["train"]
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--base-checkpoint") + 1] == f"/checkpoints/{run.base.name}/final"
    assert job["metadata"]["labels"]["valley.base-run"] == run.base.name
    assert f"{run.base.name}-train" in job["metadata"]["annotations"]["valley/needs"].split(",")


def test_multi_node_is_an_indexed_job_with_a_headless_service():
    run = select(Selection(size="10k", model="llama", nodes=2))[0]
    objects = render_run(run, CTX)
    service = next(o for o in objects if o["kind"] == "Service")
    job = jobs(run)["train"]
    assert service["spec"]["clusterIP"] == "None"
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 2
    assert job["spec"]["template"]["spec"]["subdomain"] == service["metadata"]["name"]
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PET_NNODES"]["value"] == "2"
    assert env["PET_RDZV_ENDPOINT"]["value"] == f"{run.name}-train-0.{run.name}-train:29500"
    assert len(f"{run.name}-train-0") <= 63


def test_eval_pod_isolation_runs_gpus_under_gvisor_nvproxy_with_a_native_sidecar_on_its_own_tmp():
    pod = jobs(select(Selection(size="10k", model="qwen", isolation="pod"))[0])["eval"]["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "gvisor-nvproxy"
    check, sidecar = pod["initContainers"]  # the isolation check first: its exit 3 fails the Job
    assert check["name"] == "grader-check" and check["command"][-3:] == ["check", "--sandbox", "in-gvisor"]
    assert sidecar["name"] == "grader" and sidecar["restartPolicy"] == "Always"
    assert "http://127.0.0.1:8000" in pod["containers"][0]["command"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    grader_volumes = {m["name"] for m in sidecar["volumeMounts"]}
    vllm_volumes = {m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert grader_volumes == {"grader-tmp"} and not grader_volumes & vllm_volumes


def test_split_isolation_is_the_default():
    run = by_label("qwen-10k")
    assert run.eval.isolation == "split"
    assert "runtimeClassName" not in jobs(run)["eval"]["spec"]["template"]["spec"]


def test_eval_split_isolation_grader_pods_in_gvisor_vllm_on_default_runtime():
    run = by_label("qwen-10k")
    objects = {(o["kind"], o["metadata"]["name"]): o for o in render_run(run, CTX)}
    eval_pod = objects[("Job", f"{run.name}-eval")]["spec"]["template"]["spec"]
    assert "runtimeClassName" not in eval_pod and "initContainers" not in eval_pod
    grader = objects[("Deployment", f"{run.name}-grader")]["spec"]["template"]["spec"]
    assert grader["runtimeClassName"] == "gvisor"
    policy = objects[("NetworkPolicy", f"{run.name}-grader")]["spec"]
    assert (
        policy["egress"] == []
        and policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "eval"
    )


def test_queue_label_only_on_open_jobs_gated_ones_carry_it_as_annotation():
    run = by_label("qwen-10k")
    rendered = jobs(run, RenderContext(run_id="r", queue="gpu"))
    assert rendered["fetch"]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu"
    assert "kueue.x-k8s.io/queue-name" not in rendered["data"]["metadata"]["labels"]  # gated on the fetch
    assert "kueue.x-k8s.io/queue-name" not in rendered["train"]["metadata"]["labels"]
    assert rendered["train"]["metadata"]["annotations"]["valley/queue"] == "gpu"


def test_render_is_pure_and_without_run_id_has_no_mlflow_configmap():
    run = by_label("qwen-10k")
    assert to_yaml(render_run(run, CTX)) == to_yaml(render_run(run, CTX))
    kinds = [(o["kind"], o["metadata"]["name"]) for o in render_run(run, RenderContext())]
    assert ("ConfigMap", f"{run.name}-mlflow") not in kinds
    assert ("ConfigMap", f"{run.name}-mlflow") in [(o["kind"], o["metadata"]["name"]) for o in render_run(run, CTX)]


def test_cli_render_prints_valid_multidoc_yaml(valleyctl):
    out = valleyctl(["render", "--size", "10k", "--model", "llama"]).stdout
    docs = list(yaml.safe_load_all(out))
    kinds = [
        (
            d["kind"],
            d["metadata"]["labels"].get("valley.shared") or d["metadata"]["labels"]["app.kubernetes.io/component"],
        )
        for d in docs
    ]
    assert kinds == [
        ("Job", "fetch"),
        ("ConfigMap", "lcb"),
        ("Job", "lcb"),
        ("ConfigMap", "data"),
        ("Job", "data"),
        ("ConfigMap", "config"),
        ("Job", "train"),
        ("NetworkPolicy", "grader"),
        ("Service", "grader"),
        ("Deployment", "grader"),
        ("Job", "eval"),
    ]
    assert docs[6]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"


def test_cli_render_reads_the_cluster_profile_from_flag_or_environment(valleyctl, tmp_path):
    profile = tmp_path / "cluster.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "registry": "registry.example.com/ml",
                "pods": {"train": {"node_selector": {"pool": "h100"}, "priority_class_name": "valley-train"}},
            }
        )
    )
    for args, env in ((["--profile", profile], None), ([], {"VALLEY_PROFILE": str(profile)})):
        docs = list(
            yaml.safe_load_all(valleyctl(["render", "--size", "10k", "--model", "llama", *args], env=env).stdout)
        )
        train = next(d for d in docs if d["metadata"]["name"].endswith("-train"))["spec"]["template"]["spec"]
        assert train["nodeSelector"] == {"pool": "h100"} and train["priorityClassName"] == "valley-train"
        assert train["containers"][0]["image"].startswith("registry.example.com/ml/valley-trainer:")


def test_cli_bad_profile_is_one_line_naming_the_field(valleyctl, tmp_path):
    profile = tmp_path / "cluster.yaml"
    profile.write_text("pods:\n  train:\n    tolerations: [{operator: Sometimes}]\n")
    result = valleyctl(["render", "--size", "10k", "--model", "llama", "--profile", profile], check=False)
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert "pods.train.tolerations.0.operator" in line and "exists" in line.lower()


# ------------------------------------------------------------------ cluster profile, hardening


def pods_by_component(run, ctx=CTX):
    return {
        o["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"]["template"]["spec"]
        for o in render_run(run, ctx)
        if o["kind"] in ("Job", "Deployment")
    }


def test_only_train_and_eval_pods_tolerate_gpu_nodes_by_default():
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    pods = pods_by_component(by_label("qwen-10k"))
    assert set(pods) == {"data", "train", "eval", "grader"}
    for component, pod in pods.items():
        assert pod.get("tolerations", []) == ([gpu] if component in ("train", "eval") else []), component


def test_profile_places_each_kind_of_pod():
    pods = pods_by_component(by_label("qwen-10k"), RenderContext(profile=PROFILE))
    assert pods["train"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pods["train"]["priorityClassName"] == "valley-train"
    assert pods["train"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pods["eval"]["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "eval", "effect": "NoSchedule"}
    ]
    assert pods["eval"]["hostIPC"] is False
    assert pods["data"]["nodeSelector"] == {"pool": "cpu"} and "tolerations" not in pods["data"]
    assert pods["grader"]["runtimeClassName"] == "gvisor-cpu"


def test_profile_refuses_overriding_what_render_sets():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="containers are rendered by valley"):
        ClusterProfile.model_validate({"pods": {"train": {"pod_overrides": {"containers": []}}}})


def test_every_pod_runs_as_a_high_uid_with_cpu_limits_and_chowns_volumes_only_once():
    for obj in all_objects():
        for pod in pod_specs(obj):
            security = pod["securityContext"]
            assert security["runAsUser"] >= 10000 and security["runAsGroup"] >= 10000, obj["metadata"]["name"]
            assert security["fsGroupChangePolicy"] == "OnRootMismatch"
            for c in pod["containers"] + pod.get("initContainers", []):
                assert c["resources"]["limits"]["cpu"], (obj["metadata"]["name"], c["name"])


def test_hub_token_is_a_mounted_file_only_where_something_downloads():
    for obj in all_objects():
        for pod in pod_specs(obj):
            component = obj["metadata"]["labels"]["app.kubernetes.io/component"]
            for c in pod["containers"] + pod.get("initContainers", []):
                env = {e["name"]: e for e in c.get("env", [])}
                assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in env.values()), c["name"]
                assert not any("secretRef" in e for e in c.get("envFrom", [])), c["name"]
                mounts = {m["name"] for m in c["volumeMounts"]}
                downloads = component == "data" and c["command"][0] == "valley"  # not the grader sidecar
                assert ("HF_TOKEN_PATH" in env) == ("hf-token" in mounts) == downloads, (
                    obj["metadata"]["name"],
                    c["name"],
                )
                if not downloads and c["command"][0] == "valley":
                    assert env["HF_HUB_OFFLINE"]["value"] == "1", c["name"]
            tokens = [v for v in pod["volumes"] if "secret" in v]
            assert tokens == (
                [{"name": "hf-token", "secret": {"secretName": "valley-hf", "optional": True, "defaultMode": 0o440}}]
                if component == "data"
                else []
            )


def test_failure_policy_fails_the_job_on_exit_3_in_every_workload_container():
    for obj in all_objects():
        if obj["kind"] != "Job":
            continue
        pod = obj["spec"]["template"]["spec"]
        workloads = {
            c["name"] for c in pod["containers"] + pod.get("initContainers", []) if c["command"][0] == "valley"
        }
        workloads |= {c["name"] for c in pod.get("initContainers", []) if c["name"] == "grader-check"}
        fail_on_3 = {
            r["onExitCodes"]["containerName"]
            for r in obj["spec"]["podFailurePolicy"]["rules"]
            if r["action"] == "FailJob" and r["onExitCodes"]["values"] == [3]
        }
        assert workloads and fail_on_3 == workloads, obj["metadata"]["name"]


# ------------------------------------------------------------------ shared data, built once


def test_the_study_fetches_each_student_once_and_builds_each_subset_once(valleyctl):
    docs = list(yaml.safe_load_all(valleyctl(["render", "--study", "valley"]).stdout))
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "every object once"
    shared = [d for d in docs if d["kind"] == "Job" and "valley.shared" in d["metadata"]["labels"]]
    by_kind = {
        kind: [d for d in shared if d["metadata"]["labels"]["valley.shared"] == kind]
        for kind in ("fetch", "data", "lcb")
    }
    runs = valley_study()
    assert len(by_kind["fetch"]) == len({r.model.preset for r in runs}) == 2
    assert len(by_kind["data"]) == len({r.subset_dir_name for r in runs if r.data}) == 10  # 14 trained runs
    assert len(by_kind["lcb"]) == 1
    fetches = [
        c
        for d in shared
        for c in d["spec"]["template"]["spec"]["containers"]
        if c["command"][1:3] == ["model", "fetch"]
    ]
    assert len(fetches) == 2, "no run's own Job fetches or builds anything"
    assert not any(
        c["command"][1] in ("model", "data")
        for d in docs
        if d["kind"] == "Job" and d not in shared
        for c in d["spec"]["template"]["spec"]["containers"] + d["spec"]["template"]["spec"].get("initContainers", [])
    )
    for job in shared:
        assert "valley.run" not in job["metadata"]["labels"], "cancelling one run must not delete what others need"


def test_a_shared_job_renders_identically_from_every_run_that_needs_it():
    seen: dict[str, dict] = {}
    for run in valley_study():
        for obj in render_run(run, RenderContext(queue="q")):
            if "valley.shared" in obj["metadata"]["labels"]:
                assert seen.setdefault(obj["metadata"]["name"], obj) == obj, obj["metadata"]["name"]


def test_rq2_labels_are_graded_by_a_gvisor_sidecar_that_cannot_reach_the_datasets():
    pod = jobs(by_label("qwen-30k+correct-6k"))["data"]["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "gvisor"
    grader = next(c for c in pod["initContainers"] if c["name"] == "grader")
    assert grader["restartPolicy"] == "Always" and grader["command"][-2:] == ["--sandbox", "in-gvisor"]
    assert [m["name"] for m in grader["volumeMounts"]] == ["grader-tmp"]  # no datasets, no shared /tmp
    build = pod["containers"][0]
    assert build["command"][-2:] == ["--grader-url", "http://127.0.0.1:8000"]
    assert "grader-tmp" not in {m["name"] for m in build["volumeMounts"]}
    random_subset = jobs(select(Selection(size="10k", model="llama", nodes=2))[0])["data"]["spec"]["template"]["spec"]
    assert "runtimeClassName" not in random_subset and "grader" not in {
        c["name"] for c in random_subset.get("initContainers", [])
    }
