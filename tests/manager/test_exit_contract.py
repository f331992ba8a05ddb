"""The exit-code contract between the workloads and the Jobs: every container of every rendered
Job that runs a `valley` command exits 3 on a bad spec, and the Job's podFailurePolicy fails the
Job at once on exit 3 from exactly those containers (a retry cannot fix a configuration error)."""

from __future__ import annotations

import json
import subprocess
import sys

from manager.render import RenderContext, render_run
from manager.render.common import SPEC_PATH
from manager.study import valley_study


def workload_containers():
    """(job, container) for every container running a `valley` command in the study's Jobs."""
    for run in valley_study():
        for obj in render_run(run, RenderContext()):
            if obj["kind"] == "Job":
                pod = obj["spec"]["template"]["spec"]
                for container in pod.get("initContainers", []) + pod["containers"]:
                    if container["command"][0] == "valley":
                        yield obj, container


def test_every_workload_command_exits_3_on_a_bad_spec_and_its_job_fails_at_once(valley, tmp_path):
    bad_spec = tmp_path / "run.json"
    bad_spec.write_text(json.dumps({"model": "qwen", "eval": {"n_samples": 0}}))
    commands = {}
    for job, container in workload_containers():
        rules = job["spec"]["podFailurePolicy"]["rules"]
        assert {
            "action": "FailJob",
            "onExitCodes": {"containerName": container["name"], "operator": "In", "values": [3]},
        } in rules
        # the same command with the bad spec (model fetch takes a preset: give it an unknown one)
        args = [str(bad_spec) if a == SPEC_PATH else a for a in container["command"][1:]]
        if args[:2] == ["model", "fetch"]:
            args[args.index("--preset") + 1] = "qwen-9000"
        args = [str(tmp_path / a.lstrip("/")) if a.startswith("/") and a != str(bad_spec) else a for a in args]
        for option in ("--model", "--data", "--tokenizer"):  # inputs exist: only the spec is wrong
            if option in args:
                (tmp_path / args[args.index(option) + 1]).mkdir(parents=True, exist_ok=True)
        if "--lcb-path" in args:
            lcb = tmp_path / args[args.index("--lcb-path") + 1]
            lcb.parent.mkdir(parents=True, exist_ok=True)
            lcb.touch()
        commands.setdefault(tuple(args[:2]), args)
    assert {key[0] for key in commands} == {"model", "data", "train", "eval"}
    for key, args in sorted(commands.items()):
        result = valley(args, cwd=tmp_path, check=False, timeout=120)
        assert result.returncode == 3, (key, result.returncode, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and ("n_samples" in line or "qwen-9000" in line), (key, line)


def test_a_usage_error_in_a_workload_command_is_a_configuration_error(valley, tmp_path):
    """A Job whose command has a missing or misspelled option would fail the same way on every retry."""
    spec = tmp_path / "run.json"
    spec.write_text(next(r for r in valley_study() if r.is_baseline).to_json())
    missing_dir = valley(
        ["eval", "--run-spec", spec, "--model", tmp_path / "absent", "--out", tmp_path / "eval"],
        check=False,
        timeout=120,
    )
    unknown_option = valley(["data", "build", "--run-spec", spec, "--tokenizr", tmp_path], check=False, timeout=120)
    for result in (missing_dir, unknown_option):
        assert result.returncode == 3, (result.returncode, result.stderr)
        assert "--model" in missing_dir.stderr and "--tokenizr" in unknown_option.stderr


def test_both_clis_share_conventions_one_error_style_and_the_exit_code_contract(valley, valleyctl, tmp_path):
    """`--version`, `-h`, and every mistake on the command line as one `error:` line, exit 3 (issue 22:
    neither CLI had --version or -h; valleyctl's usage errors were a boxed block exiting 2)."""
    for cli, program in ((valley, "valley"), (valleyctl, "valleyctl")):
        version = cli(["--version"], cwd=tmp_path, timeout=120)
        assert version.stdout.strip() == f"{program} 0.1.0"
        assert cli(["-h"], cwd=tmp_path, timeout=120).stdout.startswith(f"Usage: {program} [OPTIONS] COMMAND")
    mistakes = [
        (valleyctl, ["launch", "--bogus"], "error: No such option: --bogus; see `valleyctl launch --help`"),
        (valleyctl, ["launch", "--study", "mini", "--executor", "local", "--wait"], "error: --wait: only for"),
        (valleyctl, ["launch", "--run", "qwen-10k", "--size", "30k", "--dry-run"], "error: --size: not used with"),
        (valleyctl, ["render", "--size", "99k", "--model", "llama"], "error: --size: 99k is off the grid"),
        (valleyctl, ["nonsense"], "error: No such command 'nonsense'; see `valleyctl --help`"),
        (valley, ["train", "--bogus"], "error: No such option: --bogus (Possible options: --out); see `valley train"),
    ]
    for cli, args, line in mistakes:
        result = cli(args, cwd=tmp_path, check=False, timeout=120)
        assert result.returncode == 3, (args, result.returncode, result.stderr)
        (printed,) = result.stderr.strip().splitlines()
        assert printed.startswith(line), (args, printed)


def test_a_refused_grader_sidecar_fails_its_job_at_once(tmp_path):
    """Issue 21: the grader sidecar refuses `in-gvisor` outside gVisor (exit 3), but a restartable
    init container's exit only restarts it: the labelling and eval Jobs crash-looped instead of
    failing. An ordinary init container runs the same isolation check ahead of it, and the Job's
    podFailurePolicy fails the Job on that container's exit 3."""
    pods = [
        obj["spec"]["template"]["spec"] | {"job": obj}
        for run in valley_study()
        for obj in render_run(run, RenderContext())
        if obj["kind"] == "Job"
    ]
    graded = [pod for pod in pods if any(c["name"] == "grader" for c in pod.get("initContainers", []))]
    assert {tuple(pod["containers"][0]["command"][:3]) for pod in graded} == {("valley", "data", "build")}
    for pod in graded:
        names = [c["name"] for c in pod["initContainers"]]
        assert names.index("grader-check") < names.index("grader"), names
        check = pod["initContainers"][names.index("grader-check")]
        assert "restartPolicy" not in check and check["image"] == pod["initContainers"][names.index("grader")]["image"]
        assert {
            "action": "FailJob",
            "onExitCodes": {"containerName": "grader-check", "operator": "In", "values": [3]},
        } in pod["job"]["spec"]["podFailurePolicy"]["rules"]
        assert all(
            r.get("onExitCodes", {}).get("containerName") != "grader"
            for r in pod["job"]["spec"]["podFailurePolicy"]["rules"]
        )
    # the check's own command, here (not under gVisor): one line, exit 3
    command = graded[0]["initContainers"][0]["command"]
    assert command[:3] == ["python", "-m", "valley.grader"]
    result = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 3, (result.returncode, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: in-gvisor sandbox: this grader is not running under gVisor"), line
