"""Append-only, provably pre-registered claims: ``--record`` and ``zoo.status --check`` against git history.

Each test builds a small git repository holding the real ``zoo/`` package and one toy entry whose
experiment is instant, records it for real with ``python -m zoo.reproduce toy --record``, and then
edits, supersedes or tampers with it as a user could.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

TOY_EXPERIMENT = '''
"""A toy experiment for the registry tests: per-seed values that need no training."""
from zoo.harness import Experiment, JobOutput


def _job(cfg, arm, seed, ctx):
    gain = cfg["gain"] if arm == "a" else 0.0
    return JobOutput(metrics={"acc": 90.0 + gain + 0.1 * ((seed * 7) % 5)}, series={"acc": [float(seed), 1.0]})


EXPERIMENT = Experiment(name="toy", arms=lambda cfg: ["a", "b"], job=_job)
'''

CLAIM = {
    "id": "a_beats_b",
    "paper": "A is better than B.",
    "statement": "A beats B by at least half a point (paired by seed).",
    "condition": {"metric": "a.acc", "minus": "b.acc", "op": ">=", "threshold": 0.5},
}


def toy_spec(claims: list[dict]) -> str:
    spec = {
        "id": "toy",
        "title": "A toy paper",
        "family": "other",
        "kind": "method",
        "listings": ["000"],
        "summary": "A toy entry for the registry's tests, recorded for real in a scratch repository.",
        "central_claim": "A beats B.",
        "small_scale": {"level": "yes", "how": "Instant."},
        "reproduction": {
            "experiment": "zoo.experiments.toy:EXPERIMENT",
            "config": {"gain": 1.0},
            "seeds": [0, 1, 2, 3, 4],
            "quick": {"seeds": [0]},
            "arms": {"a": "arm A", "b": "arm B"},
            "metrics": {"acc": "accuracy (%)"},
        },
        "claims": claims,
    }
    return yaml.safe_dump(spec, sort_keys=False)


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_ROOT", "PYTHONPATH")}
    env.update(ZOO_ROOT=str(root), PYTHONPATH=str(root), GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    return env


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, env=_env(root), check=True, capture_output=True, text=True).stdout


def zoo_cmd(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=root, env=_env(root), capture_output=True, text=True)


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A scratch git repository with the real zoo package and the toy entry, recorded once."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "zoo", root / "zoo", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "zoo" / "experiments" / "toy.py").write_text(TOY_EXPERIMENT)
    (root / "specs").mkdir()
    (root / "specs" / "toy.yaml").write_text(toy_spec([CLAIM]))
    (root / "data").mkdir()
    (root / ".gitignore").write_text("__pycache__/\n/runs/\n/data/\n")
    git(root, "init", "-q")
    assert zoo_cmd(root, "zoo.pipeline").returncode == 0
    commit(root, "toy entry and its claim")
    res = zoo_cmd(root, "zoo.reproduce", "toy", "--record", "--no-progress")
    assert res.returncode == 0, res.stderr
    commit(root, "record toy")
    return root


def check(root: Path) -> subprocess.CompletedProcess:
    return zoo_cmd(root, "zoo.status", "--check")


def _edit_spec(root: Path, claims: list[dict]) -> None:
    (root / "specs" / "toy.yaml").write_text(toy_spec(claims))


def test_a_recorded_entry_passes_the_check(repo):
    res = check(repo)
    assert res.returncode == 0, res.stderr
    assert "toy" in res.stdout and "current" in res.stdout
    v = json.loads((repo / "reproductions" / "toy" / "verdicts.json").read_text())
    assert v["claims"]["a_beats_b"]["verdict"] == "verified"
    assert v["claims"]["a_beats_b"]["registered"]["verdict_rule"]["rule"] == "student_t"
    prov = json.loads((repo / "reproductions" / "toy" / "provenance.json").read_text())
    assert prov["commit"] == git(repo, "rev-parse", "HEAD~1").strip() and prov["dirty"] is False
    assert not git(repo, "status", "--porcelain").strip()


def test_dvc_agrees_that_the_record_is_current(repo):
    """--record writes dvc.lock itself; DVC, reading it, sees nothing to re-run."""
    pytest.importorskip("dvc")
    git(repo, "init", "-q")  # already a repo; dvc init needs it
    subprocess.run(["dvc", "init", "-q"], cwd=repo, check=True, capture_output=True)
    res = subprocess.run(["dvc", "status", "--json"], cwd=repo, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout or "{}") == {}, res.stdout


@pytest.mark.parametrize("edit", [
    lambda c: c["condition"].update(threshold=0.1),
    lambda c: c.update(verdict_rule={"rule": "student_t", "confidence": 0.8}),
    lambda c: c.update(requires=[{"metric": "b.acc", "op": "<=", "threshold": 99.0}]),
])
def test_editing_a_recorded_claim_fails_the_check(repo, edit):
    claim = json.loads(json.dumps(CLAIM))
    edit(claim)
    _edit_spec(repo, [claim])
    commit(repo, "quietly edit the claim")
    res = check(repo)
    assert res.returncode == 1
    assert "specs/toy.yaml: claims.a_beats_b:" in res.stderr and "edited after its first verdict" in res.stderr


def test_edit_then_rerecord_does_not_hide_the_edit(repo):
    claim = json.loads(json.dumps(CLAIM))
    claim["condition"]["threshold"] = 0.1
    _edit_spec(repo, [claim])
    commit(repo, "edit the claim")
    # --record refuses, naming spec and claim, and writes nothing ...
    before = (repo / "reproductions" / "toy" / "verdicts.json").read_text()
    res = zoo_cmd(repo, "zoo.reproduce", "toy", "--record", "--no-progress")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "specs/toy.yaml: claims.a_beats_b" in res.stderr and "append-only" in res.stderr
    assert (repo / "reproductions" / "toy" / "verdicts.json").read_text() == before
    # ... and a record forced past it (a plain run copied in and re-locked) still fails the check.
    assert zoo_cmd(repo, "zoo.reproduce", "toy", "--out", "runs/forced", "--no-progress").returncode == 0
    shutil.rmtree(repo / "reproductions" / "toy")
    shutil.copytree(repo / "runs" / "forced", repo / "reproductions" / "toy")
    prov = json.loads((repo / "reproductions" / "toy" / "provenance.json").read_text())
    assert prov["commit"] == git(repo, "rev-parse", "HEAD").strip() and not prov["dirty"]
    subprocess.run([sys.executable, "-c", "from zoo.catalogue import get; from zoo.pipeline import write_lock_stage; "
                    "write_lock_stage(get('toy'))"], cwd=repo, env=_env(repo), check=True)
    commit(repo, "re-record over the edit")
    res = check(repo)
    assert res.returncode == 1 and "edited after its first verdict" in res.stderr, res.stderr


def test_deleting_a_recorded_claim_fails(repo):
    new = dict(CLAIM, id="other_claim")
    _edit_spec(repo, [new])
    commit(repo, "drop the recorded claim")
    res = check(repo)
    assert res.returncode == 1 and "claims.a_beats_b: recorded" in res.stderr and "superseded" in res.stderr


def test_supersede_then_record_passes_and_keeps_the_history(repo):
    old = dict(CLAIM, superseded={"by": "a_beats_b_by_one", "reason": "Half a point is within seed noise at this scale."})
    new = dict(CLAIM, id="a_beats_b_by_one", condition=dict(CLAIM["condition"], threshold=1.0))
    _edit_spec(repo, [old, new])
    commit(repo, "supersede the claim")
    res = zoo_cmd(repo, "zoo.reproduce", "toy", "--record", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "compared with the previous record" in res.stdout
    commit(repo, "record the new claim")
    res = check(repo)
    assert res.returncode == 0, res.stderr
    v = json.loads((repo / "reproductions" / "toy" / "verdicts.json").read_text())
    assert list(v["claims"]) == ["a_beats_b_by_one"]
    from zoo.history import recorded_versions

    versions = recorded_versions("toy", repo)
    assert [list(x.verdicts) for x in versions] == [["a_beats_b"], ["a_beats_b_by_one"]]


def test_dirty_provenance_fails(repo):
    f = repo / "reproductions" / "toy" / "provenance.json"
    prov = json.loads(f.read_text())
    prov["dirty"] = True
    f.write_text(json.dumps(prov, indent=1, sort_keys=True) + "\n")
    subprocess.run([sys.executable, "-c", "from zoo.catalogue import get; from zoo.pipeline import write_lock_stage; "
                    "write_lock_stage(get('toy'))"], cwd=repo, env=_env(repo), check=True)
    commit(repo, "a record from a dirty tree")
    res = check(repo)
    assert res.returncode == 1 and "ran from a dirty checkout" in res.stderr


def test_claim_decided_before_it_was_registered_fails(repo):
    """A run whose verdicts hold a claim its commit's spec did not have was not pre-registered."""
    run_commit = json.loads((repo / "reproductions" / "toy" / "provenance.json").read_text())["commit"]
    late = dict(CLAIM, id="late_claim", condition=dict(CLAIM["condition"], threshold=0.2))
    _edit_spec(repo, [CLAIM, late])
    f = repo / "reproductions" / "toy" / "verdicts.json"
    v = json.loads(f.read_text())
    v["claims"]["late_claim"] = dict(v["claims"]["a_beats_b"], condition="a.acc − b.acc >= 0.2")
    f.write_text(json.dumps(v, indent=1, sort_keys=True) + "\n")
    subprocess.run([sys.executable, "-c", "from zoo.catalogue import get; from zoo.pipeline import write_lock_stage; "
                    "write_lock_stage(get('toy'))"], cwd=repo, env=_env(repo), check=True)
    commit(repo, "a claim added with its verdict")
    res = check(repo)
    assert res.returncode == 1
    assert f"claims.late_claim: not in the spec at the run's commit {run_commit[:10]}" in res.stderr


def test_record_refuses_a_dirty_checkout_and_overrides(repo):
    before = (repo / "reproductions" / "toy" / "verdicts.json").read_text()
    (repo / "zoo" / "experiments" / "toy.py").write_text(TOY_EXPERIMENT + "\n# an uncommitted edit\n")
    res = zoo_cmd(repo, "zoo.reproduce", "toy", "--record")
    assert res.returncode == 2 and "needs a clean checkout" in res.stderr and "zoo/experiments/toy.py" in res.stderr
    git(repo, "checkout", "zoo/experiments/toy.py")
    for args in (["gain=2.0"], ["--quick"]):
        res = zoo_cmd(repo, "zoo.reproduce", "toy", "--record", *args)
        assert res.returncode == 2 and "specs/toy.yaml: reproduction: --record runs the spec's own budget" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert (repo / "reproductions" / "toy" / "verdicts.json").read_text() == before
    assert not git(repo, "status", "--porcelain").strip()


def test_plain_run_compares_and_leaves_the_checkout_clean(repo):
    res = zoo_cmd(repo, "zoo.reproduce", "toy", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "compared with the record: reproductions/toy/" in res.stdout
    assert "a_beats_b" in res.stdout and "every verdict agrees with the record" in res.stdout
    assert "metrics: 2 identical" in res.stdout
    assert not git(repo, "status", "--porcelain").strip()
    # A run whose verdict disagrees exits 0, or 1 with --strict.
    res = zoo_cmd(repo, "zoo.reproduce", "toy", "gain=0.0", "--no-progress", "--strict")
    assert res.returncode == 1 and "VERDICTS DIFFER" in res.stdout and "REFUTED" in res.stdout
    res = zoo_cmd(repo, "zoo.reproduce", "toy", "gain=0.0", "--no-progress")
    assert res.returncode == 0
