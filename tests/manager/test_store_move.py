"""A demo store copied to another directory (the old one gone, as on another machine) is compared
and browsed where it now lies, after `valleyctl store relink`."""

import json
import shutil
import urllib.request

import pytest

from manager.mlflow_ui import mlflow_server
from manager.study import mini_study
from tests.manager.stores import new_store, record_synthetic


@pytest.mark.slow
def test_a_copied_store_is_compared_and_browsed_where_it_lies_after_relink(valleyctl, tmp_path):
    first, copy = tmp_path / "demo", tmp_path / "elsewhere" / "demo"
    first.mkdir()
    _, tracker = new_store(first)
    labels = ("tiny-qwen-baseline", "tiny-qwen-40", "tiny-qwen-120", "tiny-qwen-400")
    ids = {run.label: record_synthetic(tracker, run, first / "eval") for run in mini_study() if run.label in labels}
    shutil.copytree(first, copy)
    shutil.rmtree(first)
    uri = f"sqlite:///{copy / 'mlflow.db'}"
    compare = ["compare", "--study", "mini", "--tracking-uri", uri, "--out", tmp_path / "cmp"]

    # what a copied store did before: every artifact location still named the old folder
    before = valleyctl(compare, check=False)
    assert before.returncode != 0, before.stdout

    relinked = valleyctl(["store", "relink", "--tracking-uri", uri])
    assert f"{first / 'mlartifacts'} -> {copy / 'mlartifacts'}" in relinked.stdout
    assert "runs relinked" in relinked.stdout
    again = valleyctl(["store", "relink", "--tracking-uri", uri, "--json"])
    assert json.loads(again.stdout)["moved"] == {}

    after = valleyctl(compare)
    assert "tiny-qwen-400" in after.stdout
    # the UI's own artifact request, through a server over the copy
    with mlflow_server(uri, workdir=copy) as server:
        url = f"{server}/get-artifact?path=spec/run.json&run_uuid={ids['tiny-qwen-400']}"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert json.loads(response.read())["model"]["preset"] == "tiny-qwen"


def test_relink_refuses_a_server_store_and_a_missing_database(valleyctl, tmp_path):
    server = valleyctl(["store", "relink", "--tracking-uri", "http://localhost:5000"], check=False)
    assert server.returncode == 3 and "not a local sqlite store" in server.stderr
    missing = valleyctl(["store", "relink", "--tracking-uri", f"sqlite:///{tmp_path}/none.db"], check=False)
    assert missing.returncode == 3 and "no database at" in missing.stderr
