"""`valleyctl render --out DIR` / `--check`: the GitOps round trip through the real CLI."""

import yaml


def test_round_trip_relative_out_and_check(valleyctl, tmp_path):
    valleyctl(["render", "--study", "valley", "--out", "repo/experiments"], cwd=tmp_path)
    out = tmp_path / "repo" / "experiments"
    assert not (out / "repo").exists(), "a relative --out must not be applied twice"
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    # 16 runs, plus each shared data Job once: 2 student fetches, 10 subset builds, 1 LiveCodeBench window
    assert len(kustomization["resources"]) == 16 + 13 and kustomization["namespace"] == "valley"
    assert sum(name.startswith("shared-") for name in kustomization["resources"]) == 13
    assert all((out / name).is_file() for name in kustomization["resources"])
    checked = valleyctl(["render", "--study", "valley", "--out", "repo/experiments", "--check"], cwd=tmp_path)
    assert "up to date" in checked.stdout

    victim = out / next(name for name in kustomization["resources"] if not name.startswith("shared-"))
    victim.write_text(victim.read_text().replace("backoffLimit: 2", "backoffLimit: 9"))
    drift = valleyctl(["render", "--study", "valley", "--out", str(out), "--check"], check=False)
    assert drift.returncode == 1
    assert f"changed  {victim}" in drift.stdout and "differ" in drift.stderr


def test_changed_spec_renames_jobs_and_rewrite_drops_stale_files(valleyctl, tmp_path):
    valleyctl(["render", "--size", "10k", "--model", "llama", "--out", "gitops"], cwd=tmp_path)
    before = {p.name for p in (tmp_path / "gitops").glob("valley-*.yaml")}
    (tmp_path / "gitops" / "README.md").write_text("not ours")
    check = valleyctl(
        ["render", "--size", "10k", "--model", "llama", "--nodes", "2", "--out", "gitops", "--check"],
        cwd=tmp_path,
        check=False,
    )
    assert check.returncode == 1 and "stale" in check.stdout and "missing" in check.stdout
    valleyctl(["render", "--size", "10k", "--model", "llama", "--nodes", "2", "--out", "gitops"], cwd=tmp_path)
    after = {p.name for p in (tmp_path / "gitops").glob("valley-*.yaml")}
    assert before.isdisjoint(after) and len(after) == 1
    assert (tmp_path / "gitops" / "README.md").exists()
    old_jobs = {n.removesuffix(".yaml") + s for n in before for s in ("-train", "-eval")}
    docs = list(yaml.safe_load_all((tmp_path / "gitops" / next(iter(after))).read_text()))
    new_jobs = {d["metadata"]["name"] for d in docs if d["kind"] == "Job"}
    assert len(new_jobs) == 2 and new_jobs.isdisjoint(old_jobs)
    assert len(list((tmp_path / "gitops").glob("shared-*.yaml"))) == 3, "its data Jobs did not change: same files"
