"""``zoo.status``: recorded results bound to code, spec and data; ``--check`` names what broke."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

RECORDED = "pdp_pruning"


@pytest.fixture
def recorded_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository holding one recorded entry (its code copied, so edits stay here).

    Its history is what ``--record`` leaves: a commit with the code and spec, then the record
    whose provenance names that commit (re-locked, as the provenance changed).
    """
    from zoo import catalogue
    from zoo.pipeline import write_dvc_yaml, write_lock_stage

    assert (REPO / "reproductions" / RECORDED / "verdicts.json").is_file(), "main must hold a recorded PDP run"
    shutil.copytree(REPO / "zoo", tmp_path / "zoo", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "specs").mkdir()
    shutil.copy(REPO / "specs" / f"{RECORDED}.yaml", tmp_path / "specs")
    (tmp_path / "data").symlink_to(REPO / "data")
    (tmp_path / ".gitignore").write_text("__pycache__/\n/data\n/runs/\n")
    monkeypatch.setenv("ZOO_ROOT", str(tmp_path))
    catalogue._load_all_cached.cache_clear()
    write_dvc_yaml()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin"}
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout  # noqa: E731
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "code and spec")
    shutil.copytree(REPO / "reproductions" / RECORDED, tmp_path / "reproductions" / RECORDED)
    prov = tmp_path / "reproductions" / RECORDED / "provenance.json"
    p = json.loads(prov.read_text())
    p["commit"] = git("rev-parse", "HEAD").strip()
    prov.write_text(json.dumps(p, indent=1, sort_keys=True) + "\n")
    write_lock_stage(catalogue.get(RECORDED))
    git("add", "-A")
    git("commit", "-qm", "record")
    yield tmp_path
    catalogue._load_all_cached.cache_clear()


def _check(root: Path) -> subprocess.CompletedProcess:
    env = {"ZOO_ROOT": str(root), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-m", "zoo.status", "--check"], cwd=root, env=env, capture_output=True, text=True)


def test_recorded_result_is_current(recorded_root):
    res = _check(recorded_root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{RECORDED}" in res.stdout and "current" in res.stdout


def test_editing_an_implementation_turns_it_stale(recorded_root):
    with open(recorded_root / "zoo" / "pruning" / "pdp.py", "a") as f:
        f.write("\n# an edit\n")
    res = _check(recorded_root)
    assert res.returncode == 1
    assert f"check failed: {RECORDED}: zoo/pruning/pdp.py changed since the recorded run" in res.stderr
    with open(recorded_root / "zoo" / "harness.py", "a") as f:  # the shared harness is a dependency too
        f.write("\n# an edit\n")
    assert "zoo/harness.py changed since the recorded run" in _check(recorded_root).stderr


def test_editing_the_spec_turns_it_stale(recorded_root):
    spec = recorded_root / "specs" / f"{RECORDED}.yaml"
    spec.write_text(spec.read_text().replace("    lr: 0.001", "    lr: 0.002"))
    res = _check(recorded_root)
    assert res.returncode == 1 and f"specs/{RECORDED}.yaml changed" in res.stderr


def test_corrupted_lock_is_named(recorded_root):
    (recorded_root / "dvc.lock").write_text("stages: {pdp_pruning: [unclosed\n")
    res = _check(recorded_root)
    assert res.returncode != 0 and "dvc.lock: not valid YAML" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_missing_results_file_is_named(recorded_root):
    (recorded_root / "reproductions" / RECORDED / "plot.png").unlink()
    res = _check(recorded_root)
    assert res.returncode == 1 and f"reproductions/{RECORDED}/plot.png: missing" in res.stderr


def test_metrics_failing_schema_is_named(recorded_root):
    (recorded_root / "reproductions" / RECORDED / "metrics.json").write_text('{"entry": "x", "seeds": "zero"}')
    res = _check(recorded_root)
    assert res.returncode == 1 and "metrics.json: fails the Metrics schema" in res.stderr


def test_verdicts_disagreeing_with_metrics_is_named(recorded_root):
    f = recorded_root / "reproductions" / RECORDED / "verdicts.json"
    v = json.loads(f.read_text())
    claim = next(iter(v["claims"]))
    v["claims"][claim]["verdict"] = {"verified": "refuted"}.get(v["claims"][claim]["verdict"], "verified")
    f.write_text(json.dumps(v))
    res = _check(recorded_root)
    assert res.returncode == 1 and "disagrees with its metrics" in res.stderr


def test_implemented_entry_without_result_fails(recorded_root):
    shutil.rmtree(recorded_root / "reproductions" / RECORDED)
    res = _check(recorded_root)
    assert res.returncode == 1 and f"{RECORDED}: no recorded result" in res.stderr


def test_zoo_status_agrees_with_dvc_status():
    """Our torch-free hashing must say what DVC says, on the real repository."""
    from zoo.status import collect

    out = subprocess.run(["dvc", "status", "--json"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    dvc_changed = set(json.loads(out or "{}"))
    ours = {r.id for r in collect() if r.result == "stale"}
    reproducible = {r.id for r in collect() if r.result in ("stale", "current")}
    assert ours == dvc_changed & reproducible


def test_plain_status_sees_an_edit_without_recomputing_the_closure(recorded_root):
    """Plain `zoo.status` reads the stage's deps from dvc.yaml (fast); an edit still shows."""
    env = {"ZOO_ROOT": str(recorded_root), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(recorded_root)}
    run = lambda: subprocess.run([sys.executable, "-m", "zoo.status"], cwd=recorded_root, env=env,  # noqa: E731
                                 capture_output=True, text=True)
    assert " current " in run().stdout
    with open(recorded_root / "zoo" / "pruning" / "structure.py", "a") as f:
        f.write("\n# an edit\n")
    out = run().stdout
    assert " stale " in out and "zoo/pruning/structure.py changed since the recorded run" in out


def test_dvc_yaml_out_of_date_fails_the_check(recorded_root):
    f = recorded_root / "dvc.yaml"
    f.write_text(f.read_text().replace("    - zoo/harness.py\n", "", 1))
    res = _check(recorded_root)
    assert res.returncode == 1 and "dvc.yaml is not what the catalogue generates" in res.stderr
