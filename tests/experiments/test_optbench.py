"""The optimizer family's shared comparison (optbench) and its tuned baselines: they fail when mis-wired.

* a grid method is picked per workload by the VALIDATION mean (a hand-made table where
  validation and test disagree), ties to the smaller lr, a diverged point never wins;
* a tuned method runs at the learning rate of the tuning record, for each workload;
* job arms, derived metrics per workload, the curves, and identical results for 1 and 2 workers;
* the tuning stage: its selection, and the DVC stage entries depend on through ``reproduction.code``;
* experiments import optimizers from their modules (the dependency scan cannot see through the
  lazy ``zoo.optim`` package).
"""

from __future__ import annotations

import ast
import json
import math

import pytest
import torch

from tests.conftest import REPO
from zoo.experiments import _optbench as ob
from zoo.experiments import _optim_tuning as tuning
from zoo.harness import Env, JobRecord, Table, run

WORKLOADS = ["digits_logreg", "lstsq"]
CFG = {"workloads": WORKLOADS, "n_train": 200, "n_test": 100, "epochs": {"digits_logreg": 1, "lstsq": 1}}
LRS = (0.01, 0.1)


def _sgd(params, steps, lr, cfg, w):
    return torch.optim.SGD(params, lr=lr), None


def _methods(cfg):
    return {
        "sgd_grid": ob.Method(build=_sgd, lrs=LRS),
        "sgd_fixed": ob.Method(build=lambda p, s, lr, c, w: (torch.optim.SGD(p, lr=0.05), None)),
        "adam_tuned": ob.tuned("adam", lambda p, s, lr, c, w: (torch.optim.Adam(p, lr=lr), None)),
    }


@pytest.fixture
def tuned_file(tmp_path, monkeypatch):
    f = tmp_path / "tuned.json"
    f.write_text(json.dumps({"baselines": {"digits_logreg": {"adam": {"lr": 0.003}}, "lstsq": {"adam": {"lr": 0.02}}}}))
    return f


def _experiment(tuned_file, monkeypatch):
    exp = ob.optbench("optbench_test", _methods, tuned_file=tuned_file)
    # Worker processes find an experiment by a module-level name; the builder's module is where
    # the harness looks first (forked workers inherit the attribute).
    monkeypatch.setattr(ob, "OPTBENCH_TEST_EXPERIMENT", exp, raising=False)
    return exp


def test_job_arms_cover_every_method_workload_and_grid_point():
    arms = ob.job_arms(_methods(CFG), CFG)
    assert list(arms) == [
        "sgd_grid__digits_logreg__lr0_01", "sgd_grid__digits_logreg__lr0_1", "sgd_fixed__digits_logreg",
        "adam_tuned__digits_logreg", "sgd_grid__lstsq__lr0_01", "sgd_grid__lstsq__lr0_1", "sgd_fixed__lstsq",
        "adam_tuned__lstsq",
    ]
    assert arms["sgd_grid__lstsq__lr0_1"] == ("sgd_grid", "lstsq", 0.1)
    with pytest.raises(KeyError, match="unknown workload"):
        ob.job_arms(_methods(CFG), {"workloads": ["no_such"]})
    only = {"m": ob.Method(build=_sgd, workloads=("lstsq",))}
    assert list(ob.job_arms(only, CFG)) == ["m__lstsq"]
    with pytest.raises(ValueError, match="exactly one"):
        ob.Method()


def _record(arm, seed, **m):
    return JobRecord(arm, seed, m, {})


def test_grid_pick_follows_validation_not_test_and_ties_go_to_the_smaller_lr():
    t = Table([0, 1], [
        _record("a", 0, val_acc=90, test_acc=50), _record("a", 1, val_acc=92, test_acc=50),
        _record("b", 0, val_acc=80, test_acc=99), _record("b", 1, val_acc=80, test_acc=99),
        _record("c", 0, val_acc=91, test_acc=10), _record("c", 1, val_acc=91, test_acc=10),
        _record("nan", 0, val_acc=math.nan, test_acc=0), _record("nan", 1, val_acc=100, test_acc=0),
    ])
    assert ob.lr_grid_best(t, [("b", 0.1), ("a", 0.3)], "val_acc", True) == ("a", 0.3)
    assert ob.lr_grid_best(t, [("c", 0.3), ("a", 0.1)], "val_acc", True) == ("a", 0.1), "a tie: the smaller lr"
    assert ob.lr_grid_best(t, [("nan", 0.1), ("b", 0.3)], "val_acc", True) == ("b", 0.3), "a diverged point never wins"
    assert ob.lr_grid_best(t, [("a", 0.1), ("b", 0.3)], "val_acc", False) == ("b", 0.3), "lower is better (a loss)"


def test_a_run_wires_grid_tuned_and_fixed_methods(tuned_file, monkeypatch):
    exp = _experiment(tuned_file, monkeypatch)
    env = Env("cpu", REPO / "data", quick=True)
    res = run(exp, CFG, [0, 1], env, workers=1)
    m = res.metrics
    # the tuned baseline ran at the record's lr, per workload
    assert m["adam_tuned"]["digits_logreg_lr"] == [0.003, 0.003] and m["adam_tuned"]["lstsq_lr"] == [0.02, 0.02]
    # the grid method reports the grid point with the best mean validation metric of each workload
    t = Table([0, 1], res.jobs)
    for w, key, higher in (("digits_logreg", "val_acc", True), ("lstsq", "val_loss", False)):
        means = {lr: sum(t.metric(f"sgd_grid__{w}__lr{ob.slug(lr)}", key)) for lr in LRS}
        best = (max if higher else min)(means, key=means.get)
        assert m["sgd_grid"][f"{w}_lr"] == [best, best]
        assert m["sgd_grid"][f"{w}_{key}"] == t.metric(f"sgd_grid__{w}__lr{ob.slug(best)}", key)
    assert set(m["sgd_fixed"]) >= {"digits_logreg_test_acc", "lstsq_subopt", "lstsq_grad_evals"}
    assert "digits_logreg_lr" not in m["sgd_fixed"]
    # arms differ where their optimizers differ: a mis-wired build would make them equal
    assert m["sgd_fixed"]["lstsq_subopt"] != m["adam_tuned"]["lstsq_subopt"]
    titles = [c.title for c in res.curves]
    assert any("per epoch" in s for s in titles) and any("vs learning rate" in s for s in titles)
    again = run(exp, CFG, [0, 1], env, workers=2)
    assert again.metrics == res.metrics, "identical for any number of workers"


def test_a_missing_tuned_baseline_names_the_file_and_the_fix(tmp_path, monkeypatch):
    f = tmp_path / "tuned.json"
    f.write_text(json.dumps({"baselines": {"digits_logreg": {}}}))
    exp = _experiment(f, monkeypatch)
    with pytest.raises(KeyError, match="no tuned 'adam' for workload 'digits_logreg'"):
        run(exp, {**CFG, "workloads": ["digits_logreg"]}, [0], Env("cpu", REPO / "data"), workers=1)
    with pytest.raises(FileNotFoundError, match="zoo.baselines optim --record"):
        ob.tuned_record(tmp_path / "absent.json")


def test_tuning_selects_by_validation_per_workload_and_flags_the_grid_edge():
    cfg = {**tuning.CONFIG, "workloads": ["digits_logreg"]}
    grid = tuning.GRIDS["digits_logreg"]["adam"]
    recs = []
    for s in tuning.TUNING_SEEDS:
        for m, meth in tuning._methods(cfg).items():
            for lr in meth.lrs:
                val = 50.0 + (10.0 if lr == grid[2] else 0.0)
                recs.append(_record(f"{m}__digits_logreg__lr{ob.slug(lr)}", s, val_acc=val, test_acc=100.0 if lr == grid[0] else 0.0))
    t = Table(tuning.TUNING_SEEDS, recs)
    out = tuning.select(cfg, t)["digits_logreg"]
    assert out["adam"]["lr"] == grid[2] and out["adam"]["at_edge"] is False
    assert out["adam"]["value"] == 60.0 and set(out) == set(tuning.BASELINES)


def test_every_baseline_builds_its_optimizer_and_schedule():
    p = [torch.nn.Parameter(torch.zeros(2))]
    kinds = {b: tuning.build_baseline(b, p, 10, 0.1) for b in tuning.BASELINES}
    assert type(kinds["adamw_cosine"][0]) is torch.optim.AdamW and kinds["adamw_cosine"][0].defaults["weight_decay"] == 0.01
    assert type(kinds["adam"][0]) is torch.optim.Adam and kinds["adam"][1] is None
    assert kinds["sgdm"][0].defaults["momentum"] == 0.9 and kinds["sgdm"][1] is None
    assert isinstance(kinds["sgdm_cosine"][1], torch.optim.lr_scheduler.CosineAnnealingLR)
    assert kinds["adam_cosine"][1].T_max == 10
    with pytest.raises(KeyError, match="unknown baseline"):
        tuning.build_baseline("lion", p, 10, 0.1)


def test_the_baselines_stage_is_a_dependency_of_the_entries_that_use_it():
    from zoo.catalogue import load_all
    from zoo.pipeline import SHARED_STAGES, active_shared_stages, dvc_yaml, stage_deps

    st = SHARED_STAGES["baselines_optim"]
    users = [e for e in load_all().values() if e.spec.reproduction and set(st.outs) & set(e.spec.reproduction.code)]
    stages = dvc_yaml()["stages"]
    assert (st.name in stages) == bool(users) == (st in active_shared_stages())
    for e in users:
        assert "reproductions/_baselines/optim/tuned.json" in stage_deps(e)
    if users:
        deps = stages[st.name]["deps"]
        assert "zoo/experiments/_optim_tuning.py" in deps and "zoo/workloads/optim.py" in deps


def test_experiments_import_optimizers_from_their_modules():
    """`from zoo.optim import X` hides X's module from the DVC dependency scan (zoo.optim is lazy)."""
    for f in sorted((REPO / "zoo" / "experiments").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "zoo.optim":
                pytest.fail(f"{f.name} imports from zoo.optim; import from the optimizer's module (zoo.optim.<name>)")


def test_the_lazy_optim_package_finds_every_class_without_listing_modules():
    import zoo.optim as package
    from zoo.optim.registry import list_optimizers

    src = (REPO / "zoo" / "optim" / "__init__.py").read_text()
    for info in list_optimizers():
        assert getattr(package, info.cls.__name__) is info.cls
    assert "from zoo.optim." not in src and "import zoo.optim." not in src, "the package imports no module by name"
    with pytest.raises(AttributeError):
        package.NoSuchOptimizer  # noqa: B018
