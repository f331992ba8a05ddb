"""Which runs the flags select; unknown values get one line listing the allowed ones."""

import pytest

from manager.selection import Selection, select
from valley.errors import ValleyError


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


def test_cell_outside_the_grid_is_a_new_run_with_study_settings():
    (run,) = select(Selection(size="20k", model="qwen"))
    grid_run = select(Selection(size="10k", model="qwen"))[0]
    assert run.label == "qwen-20k" and run.train == grid_run.train and run.eval == grid_run.eval


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
        (Selection(model="mistral"), "--model: unknown value 'mistral'; allowed: llama, qwen, tiny-llama, tiny-qwen"),
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
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --model: unknown value 'mistral'; allowed: llama, qwen, tiny-llama, tiny-qwen"
    ]
