"""The local executor: step planning against the workload CLI contracts, and execution,
resume and failure handling with a stand-in `valley` that honours those contracts (the
real workloads are exercised end to end by test_demo.py)."""

import json
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from manager.backends.local_steps import execute, plan_steps
from manager.layout import Layout, done_marker
from manager.study import mini_study, ordered, valley_study
from manager.tracking import Tracker

# Writes what each contract says the command leaves behind, and a call log; fails on demand.
STAND_IN = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    args = sys.argv[1:]
    out = Path(args[args.index("--out") + 1])
    stage = args[0] if args[0] in ("train", "eval") else " ".join(args[:2])
    started = time.time()
    time.sleep(float(os.environ.get("STEP_SECONDS", "0")))
    with open(os.environ["CALLS"], "a") as calls:
        calls.write(json.dumps({"stage": stage, "out": str(out), "run_id": os.environ.get("MLFLOW_RUN_ID"),
                                "uri": os.environ["MLFLOW_TRACKING_URI"], "args": args, "started": started,
                                "ended": time.time(), "threads": os.environ.get("OMP_NUM_THREADS")}) + "\\n")
    if os.environ.get("FAIL_OUT") and str(out).endswith(os.environ["FAIL_OUT"]):
        print("stand-in failure for", out); sys.exit(1)
    target = out / "final" if stage == "train" else out
    target.mkdir(parents=True, exist_ok=True)
    (target / "written").write_text(stage)
""")


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    script = tmp_path / "valley_stand_in.py"
    script.write_text(STAND_IN)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("CALLS", str(calls))

    def swap(steps):
        return [replace(s, command=(sys.executable, str(script), *s.command[3:])) for s in steps]

    def read():
        return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []

    return swap, read


def test_steps_follow_the_workload_contracts(tmp_path):
    layout = Layout(tmp_path / ".valley")
    runs = mini_study()
    steps = plan_steps(runs, layout, {r.name: f"id-{r.label}" for r in runs})
    stages = [s.stage for s in steps]
    trained = sum(1 for r in runs if r.train is not None)
    assert (stages.count("fetch"), stages.count("data"), stages.count("train"), stages.count("eval")) == (
        2,
        trained,
        trained,
        len(runs),
    )
    assert stages.count("lcb") == 1  # one eval window for the whole study
    run = next(r for r in runs if r.label == "tiny-qwen-120")
    train = next(s for s in steps if s.key == f"train:{run.name}")
    assert train.command[1:] == (
        "-m",
        "valley",
        "train",
        "--run-spec",
        str(layout.spec_file(run)),
        "--data",
        str(layout.root / "data" / run.subset_dir_name),
        "--model",
        str(layout.root / "models" / "tiny-qwen"),
        "--out",
        str(layout.root / "checkpoints" / run.name),
    )
    assert train.run_id == train.token == "id-tiny-qwen-120"
    evaluation = next(s for s in steps if s.key == f"eval:{run.name}")
    assert evaluation.command[3:] == (
        "eval",
        "--run-spec",
        str(layout.spec_file(run)),
        "--model",
        str(layout.root / "checkpoints" / run.name / "final"),
        "--out",
        str(layout.root / "checkpoints" / run.name / "eval"),
        "--lcb-path",
        str(layout.root / "data" / "lcb" / "mini-mini-2024-08-01-2025-01-31.jsonl"),
    )
    baseline = next(s for s in steps if s.stage == "eval" and "baseline" in s.title)
    assert (
        "--model" in baseline.command
        and str(layout.root / "models") in baseline.command[baseline.command.index("--model") + 1]
    )
    fetch = steps[0]
    assert fetch.command[3:] == (
        "model",
        "fetch",
        "--preset",
        "tiny-qwen",
        "--out",
        str(layout.root / "models" / "tiny-qwen"),
    )


def test_base_runs_train_first_and_continued_runs_get_the_base_checkpoint(tmp_path):
    layout = Layout(tmp_path / ".valley")
    continued = [r for r in valley_study() if r.base is not None][:1]
    runs = ordered(continued)
    assert [r.label for r in runs] == ["qwen-30k", continued[0].label]
    steps = plan_steps(runs, layout, {r.name: r.label for r in runs})
    keys = [s.key for s in steps]
    base_train = f"train:{runs[0].name}"
    train = steps[keys.index(f"train:{runs[1].name}")]
    assert keys.index(base_train) < keys.index(train.key) and base_train in train.needs
    assert train.command[-2:] == ("--base-checkpoint", str(layout.final_checkpoint(runs[0])))


def records(tracker):
    return {r.data.tags["valley.label"]: r for r in tracker.study_runs("mini")}


def test_execute_records_into_each_run_then_resumes(tmp_path, mlflow_uri, stand_in):
    swap, calls = stand_in
    layout = Layout(tmp_path / ".valley")
    tracker = Tracker(mlflow_uri)
    runs = mini_study()[:4]
    run_ids = {r.name: tracker.ensure_run(r)[0] for r in runs}
    steps = swap(plan_steps(runs, layout, run_ids))
    outcome = execute(steps, tracker)
    assert outcome.ok and len(outcome.done) == len(steps)
    made = calls()
    assert {c["uri"] for c in made} == {mlflow_uri}
    for call in made:
        if call["stage"] in ("train", "eval"):
            assert call["run_id"] in run_ids.values()
        if call["stage"] == "model fetch":
            assert call["run_id"] is None
    assert {r.info.status for r in records(tracker).values()} == {"FINISHED"}
    assert all(done_marker(s.out_dir).exists() for s in steps)

    again = execute(steps, tracker)
    assert len(again.reused) == len(steps) and len(calls()) == len(made)


def test_failure_marks_the_run_failed_with_its_log_and_spares_the_others(tmp_path, mlflow_uri, stand_in, monkeypatch):
    swap, calls = stand_in
    layout = Layout(tmp_path / ".valley")
    tracker = Tracker(mlflow_uri)
    runs = mini_study()[:3]
    run_ids = {r.name: tracker.ensure_run(r)[0] for r in runs}
    broken = runs[1]
    monkeypatch.setenv("FAIL_OUT", f"checkpoints/{broken.name}")
    outcome = execute(swap(plan_steps(runs, layout, run_ids)), tracker)
    assert list(outcome.failed) == [f"train:{broken.name}"] and outcome.skipped == [f"eval:{broken.name}"]
    record = records(tracker)
    failed = record[broken.label]
    assert failed.info.status == "FAILED"
    log = layout.log_file(broken, "train")
    assert failed.data.tags["valley.status_note"] == f"train failed; log: {log}"
    assert "stand-in failure" in log.read_text()
    assert {record[r.label].info.status for r in runs if r is not broken} == {"FINISHED"}

    monkeypatch.delenv("FAIL_OUT")
    resumed = execute(swap(plan_steps(runs, layout, run_ids)), tracker)
    assert sorted(resumed.done) == sorted([f"train:{broken.name}", f"eval:{broken.name}"])
    assert records(tracker)[broken.label].info.status == "FINISHED"


def test_independent_chains_run_concurrently_and_a_failure_stops_only_its_own(
    tmp_path, mlflow_uri, stand_in, monkeypatch
):
    swap, calls = stand_in
    layout = Layout(tmp_path / ".valley")
    tracker = Tracker(mlflow_uri)
    qwen, llama = (next(r for r in mini_study() if r.label == label) for label in ("tiny-qwen-40", "tiny-llama-40"))
    run_ids = {r.name: tracker.ensure_run(r)[0] for r in (qwen, llama)}
    steps = swap(plan_steps([qwen, llama], layout, run_ids))
    monkeypatch.setenv("STEP_SECONDS", "0.5")
    monkeypatch.setenv("FAIL_OUT", f"checkpoints/{llama.name}")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    outcome = execute(steps, tracker, parallel=2, cores=4)

    made = calls()
    spans = [(c["started"], c["ended"]) for c in made]
    at_once = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert at_once == 2, spans  # independent steps ran at the same time, never more than --parallel
    assert {c["threads"] for c in made} == {"2"}  # each of the 2 slots gets half of the 4 cores
    assert list(outcome.failed) == [f"train:{llama.name}"] and outcome.skipped == [f"eval:{llama.name}"]
    assert f"eval:{qwen.name}" in outcome.done and f"data:{llama.subset_dir_name}" in outcome.done
    assert {label: r.info.status for label, r in records(tracker).items()} == {
        qwen.label: "FINISHED",
        llama.label: "FAILED",
    }

    monkeypatch.delenv("FAIL_OUT")
    resumed = execute(steps, tracker, parallel=2, cores=4)
    assert sorted(resumed.done) == sorted([f"train:{llama.name}", f"eval:{llama.name}"])
    assert len(resumed.reused) == len(steps) - 2 and len(calls()) == len(made) + 2
    assert {r.info.status for r in records(tracker).values()} == {"FINISHED"}


def test_parallel_is_a_local_option_of_at_least_one(valleyctl, tmp_path):
    zero = valleyctl(["launch", "--study", "mini", "--executor", "local", "--parallel", "0"], cwd=tmp_path, check=False)
    assert zero.returncode == 3 and "--parallel" in zero.stderr
    cluster = valleyctl(["launch", "--study", "mini", "--parallel", "2", "--dry-run"], cwd=tmp_path, check=False)
    assert cluster.returncode == 3 and "--parallel: steps run concurrently only with --executor local" in cluster.stderr


def test_a_recreated_mlflow_run_retrains_into_the_new_run(tmp_path, mlflow_uri, stand_in):
    swap, calls = stand_in
    layout = Layout(tmp_path / ".valley")
    tracker = Tracker(mlflow_uri)
    runs = mini_study()[:2]
    execute(swap(plan_steps(runs, layout, {r.name: tracker.ensure_run(r)[0] for r in runs})), tracker)
    fresh = Tracker(f"sqlite:///{tmp_path / 'fresh.db'}")
    outcome = execute(swap(plan_steps(runs, layout, {r.name: fresh.ensure_run(r)[0] for r in runs})), fresh)
    assert {k.split(":")[0] for k in outcome.done} == {"train", "eval"}
    assert {k.split(":")[0] for k in outcome.reused} == {"fetch", "data", "lcb"}


def test_dry_run_prints_the_commands(valleyctl, tmp_path):
    out = valleyctl(["launch", "--study", "mini", "--executor", "local", "--dry-run"], cwd=tmp_path).stdout
    runs = mini_study()
    assert out.count("valley train") == sum(1 for r in runs if r.train is not None) == 10
    assert out.count("valley eval") == len(runs) == 12 and out.count("model fetch") == 2
    assert not (tmp_path / "mlflow.db").exists()


def test_a_local_launch_with_json_prints_one_document(valleyctl, tmp_path, mlflow_uri):
    """Step lines and the progress display go to stderr; stdout is the result document alone."""
    run = next(r for r in mini_study() if r.label == "tiny-qwen-40")
    paths = Layout(tmp_path / ".valley").paths
    # every first step fails at once (the student's fetch, the LiveCodeBench staging): nothing to train or evaluate
    Path(paths.model_dir(run)).parent.mkdir(parents=True)
    Path(paths.model_dir(run)).write_text("in the way")
    Path(paths.lcb_file(run)).mkdir(parents=True)
    args = ["launch", "--study", "mini", "--run", "tiny-qwen-40", "--executor", "local", "--tracking-uri", mlflow_uri]
    result = valleyctl([*args, "--json"], cwd=tmp_path, check=False)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert (document["steps"]["done"], document["steps"]["failed"]) == (0, 2) and not document["ok"]
    assert "x failed fetch tiny-qwen" in result.stderr


def test_logs_and_cancel_default_to_the_executor_the_run_was_launched_with(valleyctl, tmp_path):
    """A run launched locally is cancelled and its logs read without --executor local (seen failing
    on main: both went to the cluster and stopped at 'no Kubernetes cluster configured')."""
    from manager.study import mini_study
    from manager.tracking import Tracker
    from valley.vocabulary import EXECUTOR_TAG

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (run,) = [r for r in mini_study() if r.label == "tiny-qwen-40"]
    run_id, _ = Tracker(uri).ensure_run(run, tags={EXECUTOR_TAG: "local"})  # as a local launch records it
    env = {"KUBECONFIG": str(tmp_path / "no-cluster")}
    where = ["tiny-qwen-40", "--study", "mini", "--tracking-uri", uri]

    logs = valleyctl(["logs", *where], env=env, cwd=tmp_path, check=False)
    assert logs.returncode == 1 and "no local logs under" in logs.stderr and "cluster" not in logs.stderr
    cancelled = valleyctl(["cancel", *where], env=env, cwd=tmp_path)
    assert f"MLflow run {run_id} marked KILLED" in cancelled.stdout
    assert Tracker(uri).client.get_run(run_id).info.status == "KILLED"
