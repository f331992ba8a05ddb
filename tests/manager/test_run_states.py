"""MLflow states that never lie: cancel, relaunch, launch preflight and undo, failure reasons,
the study run's status and pod logs as run artifacts — through the real CLI, the real
`kubernetes` client against the API server of conftest.py, and a real MLflow server."""

import json

import pytest
from mlflow.tracking import MlflowClient


@pytest.fixture
def kctl(ctl, tmp_path, cluster, mlflow_server, kube_env):
    """(fake API server, MLflow client, call) where call(args) -> (code, out, err)."""
    fake, kubeconfig = cluster
    env = kube_env(kubeconfig, tmp_path, mlflow_server)
    return fake, MlflowClient(mlflow_server), lambda args: ctl(args, env)


def record(client, study, label):
    """The newest MLflow run of a label (attempts included), or None."""
    experiment = client.get_experiment_by_name(f"valley-{study}")
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id], f"tags.`valley.label` = '{label}'", order_by=["attributes.start_time DESC"]
    )
    return runs[0] if runs else None


def launched(call, *args):
    code, out, err = call(["launch", *args])
    assert code == 0, err
    return out


def reconciled(call):
    code, out, err = call(["reconcile"])
    assert code == 0, err
    return out


def job_names(fake, name):
    return {stage: f"{name}-{stage}" for stage in ("train", "eval")}


def run_data(fake, name, **outcome) -> list[dict]:
    """Play the shared data Jobs the run's Jobs wait for (fetch, LiveCodeBench, subset); their pods."""
    needed = {
        need
        for stage in ("train", "eval")
        if ("jobs", f"{name}-{stage}") in fake.objects
        for need in fake.objects[("jobs", f"{name}-{stage}")]["metadata"]["annotations"]
        .get("valley/needs", "")
        .split(",")
    }
    shared = sorted(
        (
            n
            for n in needed
            if ("jobs", n) in fake.objects and "valley.shared" in fake.objects[("jobs", n)]["metadata"]["labels"]
        ),
        key=lambda n: ("valley-fetch-", "valley-lcb-", "valley-data-").index(n[: n.index("-", 7) + 1]),
    )
    return [fake.run_job(n, **outcome) for n in shared]


# ------------------------------------------------------------------------ 8: cancel


def test_cancel_leaves_a_finished_run_finished(kctl):
    fake, client, call = kctl
    launched(call, "--run", "llama-baseline")
    run = record(client, "valley", "llama-baseline")
    jobs = job_names(fake, run.data.tags["valley.run_name"])
    run_data(fake, run.data.tags["valley.run_name"])
    reconciled(call)
    fake.run_job(jobs["eval"])
    reconciled(call)
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    code, out, err = call(["cancel", "llama-baseline"])
    assert code == 0, err
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert f"MLflow run {run.info.run_id} already FINISHED, left as it is" in out


def test_cancel_in_the_wrong_namespace_changes_nothing_and_says_so(kctl):
    fake, client, call = kctl
    launched(call, "--run", "qwen-baseline")
    run = record(client, "valley", "qwen-baseline")
    code, out, err = call(["cancel", "qwen-baseline", "--namespace", "elsewhere"])
    assert code == 1
    assert "nothing to cancel in namespace elsewhere" in err and "--namespace" in err
    assert client.get_run(run.info.run_id).info.status == "SCHEDULED"
    assert f"{run.data.tags['valley.run_name']}-eval" in fake.names("jobs")


# ------------------------------------------------------------- 9: relaunch after cancel


def test_relaunch_after_cancel_is_a_new_attempt_linked_to_the_killed_run(kctl):
    fake, client, call = kctl
    launched(call, "--run", "llama-1k")
    first = record(client, "valley", "llama-1k")
    name = first.data.tags["valley.run_name"]
    assert first.data.tags["valley.executor"] == "k8s"  # so `cancel` without --executor goes to the cluster
    assert call(["cancel", "llama-1k"])[0] == 0
    assert client.get_run(first.info.run_id).info.status == "KILLED"
    out = launched(call, "--run", "llama-1k")
    second = record(client, "valley", "llama-1k")
    assert second.info.run_id != first.info.run_id
    assert second.data.tags["valley.previous_run_id"] == first.info.run_id and second.data.tags["valley.attempt"] == "2"
    assert f"attempt 2 after KILLED run {first.info.run_id}" in out
    assert fake.objects[("configmaps", f"{name}-mlflow")]["data"]["run_id"] == second.info.run_id
    run_data(fake, name)
    reconciled(call)
    assert client.get_run(second.info.run_id).info.status == "RUNNING"
    assert client.get_run(first.info.run_id).info.status == "KILLED"
    rows = json.loads(call(["status", "--executor", "k8s", "--json"])[1])
    assert next(r for r in rows if r["label"] == "llama-1k")["run_id"] == second.info.run_id


# ---------------------------------------------------- 10: check, record, create, undo


def test_missing_namespace_is_refused_before_anything_is_recorded(kctl):
    fake, client, call = kctl
    code, _, err = call(["launch", "--run", "qwen-1k", "--namespace", "nowhere"])
    assert code == 1
    assert err.splitlines() == [
        "error: namespace nowhere does not exist on the cluster (or you may not see it); "
        "create it with `kubectl apply -k k8s/overlays/dev` or pass --namespace"
    ]
    assert record(client, "valley", "qwen-1k") is None
    assert not [r for r in fake.requests if r[0] == "POST" and "dryRun" not in r[1]]


def test_rbac_refusal_is_found_by_dry_run_before_recording(kctl):
    fake, client, call = kctl
    fake.fail[("POST", "jobs")] = 403
    code, _, err = call(["launch", "--run", "qwen-30k"])
    assert code == 1 and "forbidden" in err
    assert fake.objects == {}
    assert record(client, "valley", "qwen-30k") is None


@pytest.mark.parametrize("refusal, said", [(403, "forbidden"), (503, "API error 503")])
def test_refusal_midway_undoes_the_launch(kctl, refusal, said):
    """A refusal the dry-run does not hit (a quota, a webhook), or the API server unavailable for a moment."""
    fake, client, call = kctl
    fake.fail_after_dry_run[("POST", "jobs")] = refusal
    code, _, err = call(["launch", "--run", "qwen-30k+hard-4k"])
    assert code == 1 and said in err and "undone" in err, err
    assert fake.objects == {}, "no orphan ConfigMaps or Services"
    for label in ("qwen-30k", "qwen-30k+hard-4k"):
        assert record(client, "valley", label) is None, "no SCHEDULED run with nothing behind it"


def test_undo_goes_on_past_a_delete_it_may_not_do_and_keeps_the_root_cause(kctl):
    """A quota refuses the launch's second Job; the undo may not delete ConfigMaps. The one line keeps the
    quota's words and lists exactly what is left. Seen failing at 8a1d673: the undo stopped at the first
    refused delete and its RBAC error replaced the quota's."""
    fake, client, call = kctl
    fake.objects[("resourcequotas", "jobs")] = {
        "kind": "ResourceQuota",
        "metadata": {"name": "jobs", "namespace": "valley"},
        "spec": {"hard": {"count/jobs.batch": "1"}},  # every dry-run fits; the second real Job does not
    }
    fake.fail[("DELETE", "configmaps")] = 403
    code, _, err = call(["launch", "--run", "qwen-1k"])
    assert code == 1
    (line,) = err.splitlines()
    cause, undo = line.split("; launch partly undone: ")
    assert "refused by the cluster's admission control" in cause and "exceeded quota: jobs" in cause
    left = sorted(f"ConfigMap valley/{name}" for plural, name in fake.objects if plural == "configmaps")
    assert left and not [key for key in fake.objects if key[0] == "jobs"], "the Job it created is deleted"
    assert undo.startswith(f"deleted 1 of {1 + len(left)} object(s) and 1 of 1 MLflow run(s) it made; ")
    assert f"left: {', '.join(left)} (" in undo
    assert record(client, "valley", "qwen-1k") is None


def test_runs_off_the_grid_are_addressed_by_label_or_name(kctl):
    """`--nodes 2` keeps the label qwen-10k under a new name; llama-20k is a cell the grid lacks. Seen
    failing at 8a1d673: status had no row for either, and logs and cancel refused both names."""
    fake, client, call = kctl
    launched(call, "--size", "10k", "--model", "qwen", "--nodes", "2")
    launched(call, "--size", "20k", "--model", "llama", "--off-grid")
    two_nodes = record(client, "valley", "qwen-10k").data.tags["valley.run_name"]
    rows = {r["name"]: r for r in json.loads(call(["status", "--executor", "k8s", "--json"])[1])}
    assert rows[two_nodes]["mlflow"] == "SCHEDULED" and rows[two_nodes]["label"] == "qwen-10k"
    assert [r["mlflow"] for r in rows.values() if r["label"] == "llama-20k"] == ["SCHEDULED"]
    run_data(fake, two_nodes)
    code, out, err = call(["logs", two_nodes])
    assert code == 0 and "==> valley-fetch-qwen-" in out, err
    code, out, err = call(["cancel", two_nodes])
    assert code == 0 and "marked KILLED" in out, err
    assert not [name for plural, name in fake.objects if name.startswith(two_nodes)]
    code, out, err = call(["cancel", "llama-20k"])
    assert code == 0 and "marked KILLED" in out, err
    code, _, err = call(["cancel", "qwen-10k"])  # a label names the grid's run first: never launched here
    assert code == 1 and "nothing to cancel" in err


def test_a_local_run_off_the_grid_is_found_by_its_spec_file(valleyctl, tmp_path):
    from manager.layout import Layout
    from manager.selection import Selection, select

    run = select(Selection(study="mini", size="40", model="tiny-qwen", isolation="pod"))[0]
    layout = Layout.at(tmp_path)
    layout.write_spec(run)
    log = layout.log_file(run, "eval")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("pass@1 0.5\n")
    env = {"HOME": str(tmp_path), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'absent' / 'mlflow.db'}"}
    out = valleyctl(["logs", run.name, "--study", "mini", "--executor", "local"], env=env, cwd=tmp_path).stdout
    assert f"==> {log} <==" in out and "pass@1 0.5" in out


# --------------------------------------------- 11: why a run failed; the study's status


def test_failed_run_records_the_jobs_failure_condition(kctl):
    fake, client, call = kctl
    launched(call, "--run", "qwen-10k")
    run = record(client, "valley", "qwen-10k")
    jobs = job_names(fake, run.data.tags["valley.run_name"])
    run_data(fake, run.data.tags["valley.run_name"])
    reconciled(call)
    fake.run_job(jobs["train"], exit_code=3, message="train.lr: must be > 0")
    out = reconciled(call)
    tags = client.get_run(run.info.run_id).data.tags
    assert client.get_run(run.info.run_id).info.status == "FAILED"
    assert (
        tags["valley.failure.stage"],
        tags["valley.failure.reason"],
        tags["valley.failure.exit_code"],
        tags["valley.failure.container"],
    ) == ("train", "PodFailurePolicy", "3", "train")
    assert "failed with exit code 3 matching FailJob rule" in tags["valley.failure.message"]
    assert "train Job failed: PodFailurePolicy, container train exit code 3" in out
    row = next(r for r in json.loads(call(["status", "--executor", "k8s", "--json"])[1]) if r["label"] == "qwen-10k")
    assert row["failure"].startswith("train Job failed: PodFailurePolicy, container train exit code 3")

    # 12: the stage's container logs are run artifacts, uploaded once
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "logs/train")}
    (pod_dir,) = artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, pod_dir)] == [f"{pod_dir}/train.log"]
    for stage, container in (
        ("fetch", "model-fetch"),
        ("lcb", "lcb-stage"),
        ("data", "data-build"),
    ):  # its shared data Jobs
        (data_pod,) = [a.path for a in client.list_artifacts(run.info.run_id, f"logs/{stage}")]
        assert [a.path.rsplit("/", 1)[1] for a in client.list_artifacts(run.info.run_id, data_pod)] == [
            f"{container}.log"
        ]
    text = client.download_artifacts(run.info.run_id, f"{pod_dir}/train.log")
    assert "train.lr: must be > 0" in open(text).read()
    posts = len(fake.requests)
    reconciled(call)
    assert not [r for r in fake.requests[posts:] if r[1].endswith("/log")], "logs are uploaded once"


def test_failed_data_job_is_reported_once_not_as_a_wait(kctl):
    fake, client, call = kctl
    launched(call, "--run", "llama-10k")
    run = record(client, "valley", "llama-10k")
    name = run.data.tags["valley.run_name"]
    run_data(fake, name, exit_code=1)
    out = reconciled(call)
    assert f"{name}: train waits for" not in out
    assert f"{name}: fetch Job failed: BackoffLimitExceeded" in out
    assert client.get_run(run.info.run_id).data.tags["valley.failure.reason"] == "BackoffLimitExceeded"
    assert f"{name}:" not in reconciled(call), "a failure is said once, not on every pass"


def test_study_run_status_follows_its_runs(kctl):
    fake, client, call = kctl
    launched(call, "--study", "mini", "--run", "tiny-llama-40")
    run = record(client, "mini", "tiny-llama-40")
    study = client.search_runs([run.info.experiment_id], "tags.`valley.kind` = 'study'")[0]
    jobs = job_names(fake, run.data.tags["valley.run_name"])
    run_data(fake, run.data.tags["valley.run_name"])
    reconciled(call)
    assert client.get_run(study.info.run_id).info.status == "RUNNING"
    fake.run_job(jobs["train"])
    reconciled(call)
    fake.run_job(jobs["eval"])
    reconciled(call)
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert client.get_run(study.info.run_id).info.status == "FINISHED"


# ----------------------------------------------------------- 12: logs of a pod that never started


def test_logs_of_a_pod_that_never_started_say_so_and_fail(kctl):
    fake, client, call = kctl
    launched(call, "--run", "qwen-baseline")
    name = record(client, "valley", "qwen-baseline").data.tags["valley.run_name"]
    data_pod = run_data(fake, name)[0]["metadata"]["name"]
    reconciled(call)
    eval_pod = fake.run_job(f"{name}-eval", waiting="ContainerCreating")["metadata"]["name"]
    code, out, err = call(["logs", "qwen-baseline"])
    assert code == 1
    assert f"model-fetch of {data_pod}: ran" in out, "the pods that ran still show their logs"
    assert f"{eval_pod}: never started (eval: ContainerCreating)" in err


# ------------------------------------------------------------------------- --json


def test_launch_json_is_one_document_on_stdout(kctl):
    fake, client, call = kctl
    code, out, err = call(["launch", "--run", "llama-baseline", "--json"])
    assert code == 0, err
    result = json.loads(out)
    (run,) = result["runs"]
    assert run["label"] == "llama-baseline" and run["run_id"] == record(client, "valley", "llama-baseline").info.run_id


def test_cancel_and_reconcile_json_stay_one_document_with_an_http_tracking_server(kctl):
    """MLflow writes "View run ... at: <url>" to stdout when a run ends on an http server; under
    --json that would break every consumer of the document."""
    fake, client, call = kctl
    launched(call, "--run", "qwen-1k")
    code, out, err = call(["cancel", "qwen-1k", "--json"])
    assert code == 0, err
    assert json.loads(out)
    launched(call, "--run", "qwen-baseline")
    run = record(client, "valley", "qwen-baseline")
    name = run.data.tags["valley.run_name"]
    run_data(fake, name)
    fake.run_job(f"{name}-eval", exit_code=1)
    code, out, err = call(["reconcile", "--json"])
    assert code == 0, err
    assert json.loads(out)
    assert client.get_run(run.info.run_id).info.status == "FAILED"


# ------------------------------------------------------------- bounded waits, with the reason


def unschedulable(pod: dict) -> None:
    """What the scheduler writes on a pod no node can take."""
    pod["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        }
    ]


def test_launch_wait_stops_with_the_reason_when_a_pod_cannot_start(kctl):
    fake, client, call = kctl
    launched(call, "--run", "llama-baseline")
    name = record(client, "valley", "llama-baseline").data.tags["valley.run_name"]
    run_data(fake, name)
    reconciled(call)
    unschedulable(fake.run_job(f"{name}-eval", waiting="ContainerCreating"))
    code, _, err = call(["launch", "--run", "llama-baseline", "--wait", "--timeout", "10m"])
    assert code == 1
    assert "stopped waiting" in err and "Unschedulable: 0/3 nodes are available" in err and f"{name}-eval" in err


def test_launch_wait_stops_at_its_timeout_naming_what_is_open(kctl):
    fake, client, call = kctl
    launched(call, "--run", "llama-baseline")
    code, _, err = call(["launch", "--run", "llama-baseline", "--wait", "--timeout", "1s"])
    name = record(client, "valley", "llama-baseline").data.tags["valley.run_name"]
    assert code == 1 and "stopped waiting after the timeout" in err and f"{name} SCHEDULED" in err


def test_logs_follow_stops_with_the_reason_on_an_unschedulable_pod(kctl):
    fake, client, call = kctl
    launched(call, "--run", "qwen-baseline")
    name = record(client, "valley", "qwen-baseline").data.tags["valley.run_name"]
    run_data(fake, name)
    reconciled(call)
    pod = fake.run_job(f"{name}-eval", waiting="ContainerCreating")
    unschedulable(pod)
    code, out, err = call(["logs", "qwen-baseline", "--follow", "--timeout", "10m"])
    assert code == 1
    assert f"pod {pod['metadata']['name']} of the eval Job cannot start (Unschedulable: 0/3 nodes" in err


def test_logs_follow_streams_the_running_stage_not_the_grader(kctl):
    fake, client, call = kctl
    launched(call, "--run", "qwen-1k")
    name = record(client, "valley", "qwen-1k").data.tags["valley.run_name"]
    run_data(fake, name)
    reconciled(call)
    train = fake.run_job(f"{name}-train", waiting="ContainerCreating")
    running = {"name": "train", "state": {"running": {}}, "image": "t", "imageID": "", "ready": True, "restartCount": 0}
    train["status"] = {"phase": "Running", "containerStatuses": [running]}
    fake.logs[(train["metadata"]["name"], "train")] = "step 1/9 loss 2.3\n"
    grader = f"{name}-grader-x1"
    fake.objects[("pods", grader)] = {
        "metadata": {"name": grader, "labels": {"valley.run": name, "app.kubernetes.io/component": "grader"}},
        "spec": {"containers": [{"name": "grader"}]},
        "status": {"phase": "Running"},
    }
    fake.logs[(grader, "grader")] = "grader listening\n"
    code, out, err = call(["logs", "qwen-1k", "--follow", "--timeout", "2s"])
    assert f"==> {train['metadata']['name']}/train <==" in out and "step 1/9 loss 2.3" in out, err
    assert "grader listening" not in out
    assert code == 1 and "stopped following after the timeout; the train Job" in err


def test_a_dry_run_checks_everything_a_launch_checks_and_sums_up_creating_nothing(kctl):
    """Seen failing on main: `--dry-run` printed the manifests and exit 0 without asking the cluster,
    so a launch it showed as fine was refused by RBAC."""
    fake, client, call = kctl
    code, out, err = call(["launch", "--run", "qwen-30k+hard-4k", "--dry-run"])
    assert code == 0, err
    assert "dry run: 2 run(s): qwen-30k, qwen-30k+hard-4k" in out
    assert "GPUs: up to 8 at once" in out and "GPU-hours training" in out
    assert "image trainer:" in out and "pushed, pinned by digest" in out
    assert "the real launch would go ahead" in out
    dry_posts = [r for r in fake.requests if r[0] == "POST"]
    assert dry_posts and all("dryRun" in r[1] for r in dry_posts)

    fake.fail[("POST", "jobs")] = 403
    code, out, err = call(["launch", "--run", "qwen-30k+hard-4k", "--dry-run"])
    assert code == 1 and err.strip().splitlines()[-1].startswith("error: dry run: the real launch would be refused")
    (refusal,) = [line for line in out.splitlines() if line.startswith("  - ")]
    assert "forbidden" in refusal.lower() and "objects, first Job" in refusal
    assert fake.objects == {}
    assert record(client, "valley", "qwen-30k") is None and record(client, "valley", "qwen-30k+hard-4k") is None
