"""Rendered manifests: golden files, strict schema validation, the hardening baseline, and
the properties the cluster relies on (gates, failure policy, GPUs, gVisor, names)."""

from pathlib import Path

import pytest
import yaml

from tests.k8s.k8s_checks import assert_hardened, pod_specs, validate_strict
from manager.render import RenderContext, render_run
from manager.render import to_yaml
from manager.selection import Selection, select
from valley.spec import RunSpec
from manager.study import mini_study, valley_study

GOLDEN = Path(__file__).parent / "golden"
CTX = RenderContext(run_id="0123456789abcdef0123456789abcdef")


def split(run: RunSpec) -> RunSpec:
    data = run.model_dump()
    data["eval"]["isolation"] = "split"
    return RunSpec.model_validate(data)


def by_label(label: str, study=valley_study) -> RunSpec:
    return next(r for r in study() if r.label == label)


CASES = {
    "qwen-10k": lambda: (by_label("qwen-10k"), CTX),
    "qwen-30k+correct-6k": lambda: (by_label("qwen-30k+correct-6k"), CTX),
    "qwen-baseline": lambda: (by_label("qwen-baseline"), CTX),
    "llama-10k-2nodes-queue": lambda: (select(Selection(size="10k", model="llama", nodes=2))[0],
                                       RenderContext(run_id=CTX.run_id, queue="gpu-h100")),
    "qwen-10k-split": lambda: (split(by_label("qwen-10k")), CTX),
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
    assert text == path.read_text(), f"{case} differs from {path}; if intended, rerun with --update-golden and review the diff"


def all_objects():
    runs = valley_study() + mini_study() + [split(by_label("qwen-10k"))] + select(Selection(size="10k", model="llama", nodes=2))
    return [obj for run in runs for obj in render_run(run, RenderContext(run_id="r", queue="q"))]


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
    return {o["metadata"]["name"].rsplit("-", 1)[1]: o for o in render_run(run, ctx) if o["kind"] == "Job"}


def test_train_job_gpus_volumes_failure_policy_and_gate():
    run = by_label("qwen-10k")
    job = jobs(run)["train"]
    assert job["spec"]["suspend"] is True and jobs(run)["data"]["spec"]["suspend"] is False
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


def test_eval_pod_isolation_in_gvisor_with_native_sidecar():
    pod = jobs(by_label("qwen-10k"))["eval"]["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "gvisor"
    sidecar = pod["initContainers"][0]
    assert sidecar["name"] == "grader" and sidecar["restartPolicy"] == "Always"
    assert "http://127.0.0.1:8000" in pod["containers"][0]["command"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"


def test_eval_split_isolation_grader_pods_in_gvisor_vllm_on_default_runtime():
    run = split(by_label("qwen-10k"))
    objects = {(o["kind"], o["metadata"]["name"]): o for o in render_run(run, CTX)}
    eval_pod = objects[("Job", f"{run.name}-eval")]["spec"]["template"]["spec"]
    assert "runtimeClassName" not in eval_pod and "initContainers" not in eval_pod
    grader = objects[("Deployment", f"{run.name}-grader")]["spec"]["template"]["spec"]
    assert grader["runtimeClassName"] == "gvisor"
    policy = objects[("NetworkPolicy", f"{run.name}-grader")]["spec"]
    assert policy["egress"] == [] and policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"][
        "app.kubernetes.io/component"] == "eval"


def test_queue_label_only_on_open_jobs_gated_ones_carry_it_as_annotation():
    run = by_label("qwen-10k")
    rendered = jobs(run, RenderContext(run_id="r", queue="gpu"))
    assert rendered["data"]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu"
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
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job", "Job", "Job"]
    assert docs[2]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"


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
    assert "runtimeClassName" not in random_subset and "grader" not in {c["name"] for c in random_subset["initContainers"]}
