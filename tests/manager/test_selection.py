"""Which runs the flags select; unknown values get one line listing the allowed ones."""

import pytest

from manager.selection import Selection, select
from valley.errors import ConfigError, ValleyError


@pytest.mark.parametrize(
    "sel,labels",
    [
        (Selection(size="10k", model="llama"), ["llama-10k"]),
        (Selection(size="6k", model="qwen", subset="correct"), ["qwen-correct-6k"]),
        (Selection(size="6k", model="qwen", subset="correct", base="qwen-30k"), ["qwen-30k+correct-6k"]),
        (Selection(model="llama"), ["llama-baseline", "llama-1k", "llama-10k", "llama-30k"]),
        (Selection(size="baseline"), ["qwen-baseline", "llama-baseline"]),
        (Selection(runs=("qwen-10k", "llama-baseline")), ["qwen-10k", "llama-baseline"]),
        (Selection(study="mini", size="40", model="tiny-qwen"), ["tiny-qwen-40"]),
    ],
)
def test_flags_select_grid_cells(sel, labels):
    assert [r.label for r in select(sel)] == labels


def test_study_selects_everything():
    assert len(select(Selection(study="valley"))) == 16 and len(select(Selection(study="mini"))) == 12


def test_cell_outside_the_grid_is_a_new_run_with_study_settings_only_when_asked():
    (run,) = select(Selection(size="20k", model="qwen", off_grid=True))
    grid_run = select(Selection(size="10k", model="qwen"))[0]
    assert run.label == "qwen-20k" and run.train == grid_run.train and run.eval == grid_run.eval
    assert select(Selection(size="10K", model="qwen")) == [grid_run]  # the same size, spelled another way


@pytest.mark.parametrize(
    "sel,message",
    [
        # issue 22: each of these made a run nobody asked for, or dropped a flag without a word
        (
            Selection(size="99k", model="llama"),
            "--size: 99k is off the grid of study 'valley' for llama (1k, 10k, 30k); pass --off-grid",
        ),
        (Selection(size="5k", model="qwen"), "--size: 5k is off the grid of study 'valley' for qwen (1k, 4k, 6k,"),
        (
            Selection(study="mini", size="10k", model="llama"),
            "--model: 'llama' is not a student of study 'mini' (tiny-llama, tiny-qwen); its runs are in --study valley",
        ),
        (Selection(model="tiny-qwen"), "--model: 'tiny-qwen' is not a student of study 'valley' (llama, qwen)"),
        (
            Selection(runs=("qwen-10k",), size="30k"),
            "--size: not used with --run, which names whole runs; drop --size or --run",
        ),
        (
            Selection(runs=("qwen-10k",), model="qwen", subset="easy"),
            "--model and --subset: not used with --run",
        ),
        (Selection(size="10k", model="qwen", off_grid=True), "--off-grid: only for a --model and --size the study's"),
    ],
)
def test_mistakes_are_refused_as_configuration_errors(sel, message):
    with pytest.raises(ConfigError) as error:
        select(sel)
    assert str(error.value).startswith(message), str(error.value)


def test_nodes_changes_the_spec_and_the_name():
    one = select(Selection(size="10k", model="llama"))[0]
    two = select(Selection(size="10k", model="llama", nodes=2))[0]
    assert two.train.nodes == 2 and two.name != one.name and two.label == one.label


def test_isolation_changes_the_eval_spec_and_the_name_not_the_base():
    split = select(Selection(size="6k", model="qwen", subset="correct", base="qwen-30k"))[0]
    pod = select(Selection(size="6k", model="qwen", subset="correct", base="qwen-30k", isolation="pod"))[0]
    assert (split.eval.isolation, pod.eval.isolation) == ("split", "pod")
    assert pod.name != split.name and pod.label == split.label and pod.base == split.base
    assert (
        select(Selection(size="10k", model="qwen", isolation="split"))[0]
        == select(Selection(size="10k", model="qwen"))[0]
    )


@pytest.mark.parametrize(
    "sel,message",
    [
        (Selection(model="mistral"), "--model: unknown value 'mistral'; allowed: llama, qwen"),
        (
            Selection(subset="medium"),
            "--subset: unknown value 'medium'; allowed: random, correct, incorrect, easy, hard",
        ),
        (Selection(study="big"), "--study: unknown value 'big'; allowed: valley, mini"),
        (Selection(base="qwen-9k", size="6k", model="qwen"), "--from: unknown value 'qwen-9k'; allowed: qwen-1k"),
        (Selection(runs=("nope",)), "--run: unknown value 'nope'; allowed: qwen-baseline"),
        (Selection(size="ten", model="qwen"), "--size"),
        (Selection(size="10k", model="qwen", isolation="vm"), "--isolation: unknown value 'vm'; allowed: split, pod"),
    ],
)
def test_unknown_values_list_the_allowed_ones(sel, message):
    with pytest.raises(ValleyError) as error:
        select(sel)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_cli_error_is_one_line(valleyctl):
    result = valleyctl(["render", "--model", "mistral", "--size", "10k"], check=False)
    assert result.returncode == 3  # a configuration error: the command line is wrong, a retry cannot help
    assert result.stderr.strip().splitlines() == ["error: --model: unknown value 'mistral'; allowed: llama, qwen"]
