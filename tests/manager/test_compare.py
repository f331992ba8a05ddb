"""`valleyctl compare` on runs recorded into a real sqlite MLflow store (tests/manager/stores.py:
the control plane's own records, evaluations recorded by `valley eval`'s code, synthetic verdicts)."""

import json

import numpy as np
import pytest
from rich.console import Console

from manager.compare import EvaluatedRun, check_same_eval, compare_study, render
from manager.study import valley_study
from tests.manager.stores import RATES, new_store, record_synthetic
from valley.errors import ValleyError
from valley.spec import EvalSpec


@pytest.fixture(scope="module")
def valley_store(tmp_path_factory):
    """The paper's 16 runs, evaluated; shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("valley-store")
    uri, tracker = new_store(root)
    for run in valley_study():
        record_synthetic(tracker, run, root / "eval")
    return uri, tracker


def test_compare_prints_tables_contrasts_fit_and_logs_the_plot(valley_store, valleyctl, tmp_path):
    mlflow_uri, tracker = valley_store
    client, experiment_id = tracker.client, tracker.experiment_id("valley")
    result = valleyctl(
        ["compare", "--study", "valley", "--json", "--target", "0.4", "--out", tmp_path / "cmp"],
        env={"MLFLOW_TRACKING_URI": mlflow_uri},
    )
    report = json.loads(result.stdout)
    assert report["pending"] == [] and len(report["runs"]) == 16
    assert "Downloading artifacts" not in result.stderr, "one MLflow progress bar per run buries compare's own output"

    table1 = {(r["student"], r["size"]): r for r in report["table1"]}
    assert set(table1) == {(m, s) for m in ("qwen", "llama") for s in (0, 1000, 10000, 30000)}
    assert table1[("qwen", 1000)]["paper_completion_rate"] == 0.1842
    assert table1[("llama", 30000)]["paper_think_tag_rate"] == 0.7068
    assert table1[("qwen", 10000)]["completion_rate"] == 0.75  # 3 of 4 samples end with "stop"
    assert table1[("qwen", 10000)]["think_tag_rate"] == 1.0

    table2 = {(r["start"], r["row"]): r for r in report["table2"]}
    assert len(table2) == 10
    assert table2[("instruct", "baseline")]["label"] == "qwen-baseline"
    assert table2[("qwen-30k", "baseline")]["label"] == "qwen-30k"  # the 30K checkpoint is its own baseline
    assert table2[("qwen-30k", "easy-4k")]["paper_pass_at_1"] == 0.352
    assert table2[("instruct", "hard-4k")]["paper_pass_at_1"] == 0.137
    assert table2[("qwen-30k", "easy-4k")]["ci_low"] < table2[("qwen-30k", "easy-4k")]["pass_at_1"]

    contrasts = {(c["start"], c["a"]): c for c in report["contrasts"]}
    assert len(contrasts) == 6
    largest = contrasts[("instruct", "llama-30k")]  # each student's largest RQ1 run against its baseline
    assert largest["b"] == "llama-baseline" and largest["ci_low"] > 0 and largest["p_not_above"] < 0.05
    easy = contrasts[("instruct", "qwen-easy-4k")]
    assert easy["b"] == "qwen-hard-4k" and easy["ci_low"] > 0 and easy["problems"] == 60
    tie = contrasts[("qwen-30k", "qwen-30k+correct-6k")]
    assert tie["ci_low"] <= 0 <= tie["ci_high"]  # correct ≈ incorrect, as the paper found

    fits = {f["student"]: f for f in report["valley_fit"]}
    assert fits["qwen"]["sizes"] == [1000, 10000, 30000] and fits["qwen"]["slope_per_ln_size"] > 0
    predicted = fits["llama"]["predicted_size"]
    assert predicted > 30000  # 0.4 lies beyond the largest run
    assert fits["llama"]["intercept"] + fits["llama"]["slope_per_ln_size"] * np.log(predicted) == pytest.approx(0.4)

    png = tmp_path / "cmp" / "valley-valley.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    parents = client.search_runs([experiment_id], "tags.`valley.kind` = 'study'")
    assert len(parents) == 1
    assert client.list_artifacts(parents[0].info.run_id, "compare") == [], "compare wrote into a store it only read"

    # the human form; asked to, it logs into the study run, reusing it instead of creating another
    console = Console(record=True, width=160)
    result = compare_study("valley", mlflow_uri, tmp_path / "cmp", target=0.4, log_to_study_run=True)
    render(result, console)
    text = console.export_text()
    assert "Table 1" in text and "Table 2" in text and "0.1842" in text and "qwen-easy-4k − qwen-hard-4k" in text
    assert "valley fit llama" in text and "needs N ≈" in text
    assert len(client.search_runs([experiment_id], "tags.`valley.kind` = 'study'")) == 1
    assert result.logged_to == [parents[0].info.run_id]
    logged = {a.path for a in client.list_artifacts(result.logged_to[0], "compare")}
    assert logged == {"compare/valley-valley.png", "compare/compare-valley.json"}


def test_compare_refuses_runs_with_different_eval_specs_and_names_missing_studies(valleyctl, tmp_path):
    mlflow_uri, tracker = new_store(tmp_path)
    runs = {r.label: r for r in valley_study()}
    record_synthetic(tracker, runs["qwen-1k"], tmp_path)
    record_synthetic(tracker, runs["qwen-10k"], tmp_path, eval_spec=EvalSpec(n_samples=8))
    # where an eval ran is not what it measured: a different GPU layout is not refused
    record_synthetic(tracker, runs["qwen-30k"], tmp_path, eval_spec=EvalSpec(data_parallel_size=2, isolation="pod"))
    result = valleyctl(
        ["compare", "--study", "valley", "--out", tmp_path / "cmp"],
        env={"MLFLOW_TRACKING_URI": mlflow_uri},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: eval.n_samples: qwen-1k was evaluated with 4, qwen-10k with 8; "
        "re-evaluate with one eval spec or pass --allow-mixed-eval"
    ]
    allowed = compare_study("valley", mlflow_uri, tmp_path / "cmp", allow_mixed_eval=True)
    assert allowed.runs == ["qwen-1k", "qwen-10k", "qwen-30k"]
    with pytest.raises(ValleyError, match="valleyctl launch --study mini"):  # no such experiment yet
        compare_study("mini", mlflow_uri, tmp_path / "cmp")


def test_runs_may_differ_in_where_they_ran_but_not_in_what_was_measured():
    def evaluated(label, **eval_fields):
        spec = EvalSpec(**eval_fields).model_dump(mode="json")
        return EvaluatedRun("id-" + label, label, "rq1", "qwen", 1000, "random", None, {}, spec)

    check_same_eval([evaluated("a"), evaluated("b", data_parallel_size=2, tensor_parallel_size=4, isolation="pod")])
    with pytest.raises(ValleyError, match=r"^eval\.grader_timeout_s: a was evaluated with 6\.0, b with 10\.0;"):
        check_same_eval([evaluated("a"), evaluated("b", grader_timeout_s=10)])


def test_compare_refuses_a_valley_fit_over_constant_scores(valleyctl, tmp_path):
    mlflow_uri, tracker = new_store(tmp_path)
    zero = {label: -1.0 for label in RATES}  # far below 0 before clipping: nothing ever passes
    for run in valley_study():
        if run.label.startswith("llama") and run.base is None:
            record_synthetic(tracker, run, tmp_path / "eval", rates=zero)
    result = valleyctl(
        ["compare", "--study", "valley", "--out", tmp_path / "cmp"], env={"MLFLOW_TRACKING_URI": mlflow_uri}
    )
    fit_lines = [line for line in result.stdout.splitlines() if line.startswith("valley fit")]
    assert fit_lines == [
        "valley fit llama: none, pass@1 is 0.0000 at every size from the bottom on (1k, 10k, 30k); "
        "a line through constant scores measures nothing"
    ]
    report = json.loads(
        valleyctl(
            ["compare", "--study", "valley", "--json", "--out", tmp_path / "cmp"],
            env={"MLFLOW_TRACKING_URI": mlflow_uri},
        ).stdout
    )
    assert report["valley_fit"][0]["slope_per_ln_size"] is None and report["valley_fit"][0]["refused"]


def drawn_figure(monkeypatch, draw):
    """The matplotlib Figure `draw()` saves (captured at savefig), to read what was plotted."""
    from matplotlib.figure import Figure

    saved = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (saved.append(self), original(self, *a, **k))[1])
    draw()
    assert saved, "nothing was plotted"
    return saved[-1]


def test_the_valley_plot_is_readable(valley_store, monkeypatch, tmp_path):
    """Ticks at the study's sizes, no student hidden by another, baselines off the axis, the fit
    drawn with its equation, a CI bar on every point (issue 22: each was missing)."""
    from matplotlib.container import ErrorbarContainer

    mlflow_uri, _ = valley_store
    result = {}
    figure = drawn_figure(monkeypatch, lambda: result.update(r=compare_study("valley", mlflow_uri, tmp_path)))
    fits = {f.student: f for f in result["r"].valley_fit}
    panels = [a for a in figure.axes if a.get_xscale() == "log"]
    assert len(panels) == 3
    for axes in panels:
        labels = [t.get_text() for t in axes.get_xticklabels() if axes.get_xlim()[0] <= t.get_position()[0]]
        assert labels == ["base", "1K", "10K", "30K"], labels
        assert axes.get_ylim()[0] < 0, "a score of 0 must sit above the x axis, not on it"
        bars = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
        points = {}
        for bar in bars:
            line, _, (ci,) = bar.lines[0], bar.lines[1], bar.lines[2]
            xs, ys = line.get_data()
            assert len(ci.get_segments()) == len(xs), f"{bar.get_label()}: a point without its CI bar"
            points[bar.get_label()] = (tuple(xs), line.get_marker())
        students = {label: p for label, p in points.items() if label in ("qwen", "llama")}
        assert set(students) == {"qwen", "llama"}
        (qx, qmarker), (lx, lmarker) = students["qwen"], students["llama"]
        assert qmarker != lmarker and not set(qx) & set(lx), "one student's points hide under the other's"
        baselines = {label: p for label, p in points.items() if "untrained" in label}
        assert len(baselines) == 2 and all(max(xs) < min(qx + lx) for xs, _ in baselines.values())
    legend = [t.get_text() for t in panels[0].get_legend().get_texts()]
    for student, fit in fits.items():
        (line,) = [line for line in panels[0].get_lines() if line.get_label().startswith(f"{student} fit")]
        assert fit.equation in line.get_label() and "ln N" in fit.equation and line.get_label() in legend
        xs, ys = line.get_data()
        assert min(xs) == pytest.approx(min(fit.sizes)) and ys[-1] == pytest.approx(fit.at(xs[-1]))
