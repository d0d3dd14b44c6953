"""The runner: quick end-to-end run, determinism, destinations, atomicity and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from zoo.catalogue import get, load_all
from zoo.reproduce import OverrideError, compose_config, destination, main
from tests.conftest import REPO


def _run(args, root) -> subprocess.CompletedProcess:
    env = {"ZOO_ROOT": str(root), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(root)}
    return subprocess.run([sys.executable, "-m", "zoo.reproduce", *args], cwd=root, env=env, capture_output=True, text=True)


def test_quick_end_to_end_and_deterministic(zoo_root, capsys):
    zoo_root("pdp_pruning")
    root = zoo_root.root
    assert main(["pdp_pruning", "--quick", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "results: runs/pdp_pruning/quick/" in out and "pdp_u90.test_acc" in out
    # A smoke run prints metrics and says why there are no verdicts.
    assert "no verdicts" in out and "VERIFIED" not in out and "REFUTED" not in out and "INCONCLUSIVE" not in out
    d = root / "runs" / "pdp_pruning" / "quick"
    assert {p.name for p in d.iterdir()} == {"metrics.json", "provenance.json", "curves.json", "jobs.json", "plot.png"}
    assert (d / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    prov = json.loads((d / "provenance.json").read_text())
    assert prov["quick"] and prov["seeds"] == [0] and prov["device"] == "cpu" and prov["wall_time_s"] > 0
    first = json.loads((d / "metrics.json").read_text())
    assert main(["pdp_pruning", "--quick", "--no-progress", "--workers", "1"]) == 0
    assert json.loads((d / "metrics.json").read_text()) == first, "same seed, any worker count: identical metrics"
    assert not (root / "reproductions").exists(), "a quick run never writes the recorded results"


def test_destinations():
    e = get("pdp_pruning")
    assert destination(e, False, [], None, record=True) == e.results_dir
    full = destination(e, False, [], None)
    assert full.parent.name == "pdp_pruning" and full.name.startswith("full-") and "runs" in full.parts
    assert "runs/pdp_pruning/quick" in str(destination(e, True, [], None))
    over = destination(e, False, ["epochs=2"], None)
    assert "runs/pdp_pruning/epochs=2_" in str(over)


def test_overrides_compose_and_type_check():
    e = get("pdp_pruning")
    cfg = compose_config(e, ["epochs=2", "seeds=[3]", "lr=0.01"])
    assert cfg["epochs"] == 2 and cfg["seeds"] == [3] and cfg["lr"] == 0.01
    cfg = compose_config(e, ["lr=1"])  # an int where a float is expected is fine
    assert cfg["lr"] == 1
    with pytest.raises(OverrideError, match=r"reproduction.config.epochs: .*expected int"):
        compose_config(e, ["epochs=abc"])
    with pytest.raises(OverrideError, match="known keys"):
        compose_config(e, ["epochz=3"])
    with pytest.raises(OverrideError, match="seeds must be a non-empty list"):
        compose_config(e, ["seeds=[]"])


@pytest.mark.parametrize(
    "args,expect",
    [
        (["no_such_paper"], "unknown id 'no_such_paper'"),
        (["pdp_pruning", "epochs=abc"], "expected int"),
        (["pdp_pruning", "not_a_key=1"], "bad override"),
        (["pdp_pruning", "epochs="], "expected int"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(zoo_root, args, expect):
    zoo_root("pdp_pruning")
    root = zoo_root.root
    res = _run(args, root)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0] and "specs/" in lines[0], res.stderr
    assert not (root / "runs").exists() and not (root / "reproductions").exists()


def test_broken_spec_is_named(zoo_root):
    zoo_root("id: pdp_pruning\ntitle: x\nfamily: [\n", name="pdp_pruning")
    res = _run(["pdp_pruning", "--quick"], zoo_root.root)
    assert res.returncode == 2 and "specs/pdp_pruning.yaml: line" in res.stderr


def test_crashed_run_keeps_recorded_results(zoo_root, monkeypatch):
    zoo_root("pdp_pruning")
    dest = zoo_root.root / "reproductions" / "pdp_pruning"
    dest.mkdir(parents=True)
    (dest / "verdicts.json").write_text('{"recorded": true}')
    import zoo.experiments.pdp_pruning as exp

    def boom(cfg, arm, seed, ctx):
        raise RuntimeError("crash mid-run")

    monkeypatch.setattr(exp.EXPERIMENT, "job", boom)
    with pytest.raises(RuntimeError, match="crash mid-run"):
        main(["pdp_pruning", "--out", str(dest), "--no-progress", "--workers", "1", "epochs=1"])
    assert (dest / "verdicts.json").read_text() == '{"recorded": true}'
    assert [p.name for p in dest.parent.iterdir()] == ["pdp_pruning"]


def test_submitit_local_multirun_over_two_seeds(zoo_root):
    """Hydra's submitit launcher (its local executor stands in for SLURM) runs one job per seed, then they merge."""
    zoo_root("pdp_pruning")
    root = zoo_root.root
    res = _run(["pdp_pruning", "--quick", "-m", "seeds=[0],[1]", "hydra/launcher=submitit_local"], root)
    assert res.returncode == 0, res.stderr[-2000:]
    jobs = sorted((root / "runs" / "multirun").glob("*/pdp_pruning/jobs/[0-9]*/metrics.json"))
    assert len(jobs) == 2
    assert sorted(json.loads(j.read_text())["seeds"] for j in jobs) == [[0], [1]]
    merged = list((root / "runs" / "multirun").glob("*/pdp_pruning/merged/metrics.json"))
    assert len(merged) == 1 and json.loads(merged[0].read_text())["seeds"] == [0, 1]
    assert "merged 2 jobs of pdp_pruning" in res.stdout
    assert not (root / "reproductions").exists()


def test_a_seed_sweep_merges_into_what_one_process_writes(tmp_path):
    """`-m seeds=[0],[1],...` on joblib gives exactly the single-process result, verdicts included."""
    from tests.test_history import CLAIM, TOY_EXPERIMENT, git, toy_spec, zoo_cmd

    root = tmp_path / "repo"
    import shutil

    shutil.copytree(REPO / "zoo", root / "zoo", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "zoo" / "experiments" / "toy.py").write_text(TOY_EXPERIMENT)
    (root / "specs").mkdir()
    (root / "specs" / "toy.yaml").write_text(toy_spec([CLAIM]))
    git(root, "init", "-q")
    res = zoo_cmd(root, "zoo.reproduce", "toy", "-m", "seeds=[0],[1],[2],[3],[4]", "hydra/launcher=joblib",
                  "--out", str(root / "sweep"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "VERIFIED" in res.stdout
    single = zoo_cmd(root, "zoo.reproduce", "toy", "--out", str(root / "single"), "--no-progress")
    assert single.returncode == 0, single.stderr
    for name in ("metrics.json", "verdicts.json", "curves.json", "jobs.json"):
        a = json.loads((root / "sweep" / "toy" / "merged" / name).read_text())
        b = json.loads((root / "single" / name).read_text())
        assert a == b, name


REPRODUCIBLE = sorted(e.id for e in load_all().values() if e.spec.reproduction is not None)


@pytest.mark.parametrize("entry_id", REPRODUCIBLE)
def test_every_entry_runs_its_quick_budget(zoo_root, entry_id, capsys):
    """The registry drives it: a new reproducible entry is smoke-run here without editing this file."""
    zoo_root(entry_id)
    assert main([entry_id, "--quick", "--no-progress"]) == 0
    d = zoo_root.root / "runs" / entry_id / "quick"
    metrics = json.loads((d / "metrics.json").read_text())
    spec = get(entry_id).spec.reproduction
    assert set(metrics["arms"]) == set(spec.arms), "every declared arm is reported"
    assert not (d / "verdicts.json").exists()
    assert json.loads((d / "provenance.json").read_text())["quick"]
