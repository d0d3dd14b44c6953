"""Wiring tests for zoo.experiments.mfac_matrix_free_second_order: they fail when the experiment is mis-wired.

* the ``mfac`` arm steps :class:`MFAC` with the config's window and dampening, at its grid's
  learning rate, under the cosine schedule; the baselines run torch's SGD / Adam at the tuning
  record's learning rates (a temporary record here);
* the comparison arms run only on the comparison workloads, the exactness check only on its own;
* the grid arm is picked by validation accuracy, not test accuracy (a hand-made table);
* the exactness check wraps the window and measures errors at the float64 / float32 level;
* a quick run gives every metric the claims need.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import zoo.experiments._optbench as ob
from zoo.catalogue import get, repo_root
from zoo.experiments import mfac_matrix_free_second_order as exp
from zoo.harness import Env, JobContext, JobRecord, Table, run
from zoo.optim.mfac import MFAC
from zoo.workloads.optim import get_workload, load

RECORD = {"baselines": {w: {"sgdm_cosine": {"lr": 0.05}, "adam_cosine": {"lr": 0.002}}
                        for w in ("digits_mlp", "mnist1d_mlp")}}


@pytest.fixture
def tuned_record(tmp_path, monkeypatch):
    f = tmp_path / "tuned.json"
    f.write_text(json.dumps(RECORD))
    real = ob.tuned_record
    monkeypatch.setattr(ob, "tuned_record", lambda path=None: real(f))
    return f


def _quick() -> tuple[dict, list[int]]:
    r = get("mfac_matrix_free_second_order").spec.reproduction
    assert r is not None
    return {**r.config, **r.quick.config}, list(r.quick.seeds or r.seeds)


def test_arms_cover_the_grid_on_the_comparison_workloads_and_the_check_on_its_own():
    cfg, _ = _quick()
    arms = ob.job_arms(exp._methods(cfg), cfg)
    assert {w for m, w, _ in arms.values() if m == "ihvp"} == {cfg["ihvp_workload"]}
    for m in ("mfac", "sgdm_cosine", "adam_cosine"):
        assert {w for mm, w, _ in arms.values() if mm == m} == set(cfg["compare_workloads"]), m
    assert sorted(lr for m, w, lr in arms.values() if m == "mfac" and w == "digits_mlp") == sorted(cfg["mfac_lrs"])


def test_each_arm_builds_the_optimizer_it_names(tuned_record, monkeypatch):
    cfg, _ = _quick()
    cfg = {**cfg, "compare_workloads": ["digits_mlp"], "workloads": ["digits_mlp"], "epochs": {"digits_mlp": 1}}
    built: list[tuple[str, torch.optim.Optimizer, object]] = []
    real_run = ob.run

    def spy(w, data, make, seed, **kw):
        def wrapped(params, steps):
            opt, sched = make(params, steps)
            built.append((w.name, opt, sched))
            return opt, sched
        return real_run(w, data, wrapped, seed, **kw)

    monkeypatch.setattr(ob, "run", spy)
    env = Env("cpu", repo_root() / "data", quick=True)
    experiment = exp.EXPERIMENT
    setup = experiment.setup(cfg, env)
    ctx = JobContext(env, setup, None, None)
    for arm, (m, w, lr) in ob.job_arms(exp._methods(cfg), cfg).items():
        built.clear()
        torch.manual_seed(0)
        experiment.job(cfg, arm, 0, ctx)
        (_, opt, sched), = built
        group = opt.param_groups[0]
        if m == "mfac":
            assert type(opt) is MFAC and opt.ngrads == cfg["mfac_ngrads"] and opt.damp == cfg["mfac_damp"]
            assert group["momentum"] == 0.0 and group["weight_decay"] == 0.0
            assert group["initial_lr"] == lr
        elif m == "sgdm_cosine":
            assert type(opt) is torch.optim.SGD and group["initial_lr"] == 0.05 and group["momentum"] == 0.9
        elif m == "adam_cosine":
            assert type(opt) is torch.optim.Adam and group["initial_lr"] == 0.002
        assert isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR), arm


def test_the_grid_arm_is_picked_by_validation_not_test():
    cfg, _ = _quick()
    cfg = {**cfg, "workloads": ["digits_mlp"], "compare_workloads": ["digits_mlp"], "mfac_lrs": [0.001, 0.01, 0.1]}
    val = {0.001: 50.0, 0.01: 90.0, 0.1: 80.0}
    test = {0.001: 99.0, 0.01: 60.0, 0.1: 70.0}
    recs = []
    for arm, (m, w, lr) in ob.job_arms(exp._methods(cfg), cfg).items():
        for s in (0, 1):
            v = val.get(lr, 0.0) if m == "mfac" else 0.0
            t = test.get(lr, 0.0) if m == "mfac" else 0.0
            recs.append(JobRecord(arm, s, {"val_acc": v, "test_acc": t, **({"lr": lr} if lr else {})}))
    derived = exp.EXPERIMENT.derive(cfg, Table([0, 1], recs))
    assert derived["mfac"]["digits_mlp_lr"] == [0.01, 0.01] and derived["mfac"]["digits_mlp_test_acc"] == [60.0, 60.0]


def test_the_exactness_check_wraps_the_window_and_measures_the_precision():
    cfg, _ = _quick()
    cfg = {**cfg, "ihvp_ngrads": 4, "ihvp_epochs": 2}
    w = get_workload("digits_logreg")
    data = load(w, repo_root() / "data", "cpu", 300, 100)
    torch.manual_seed(0)
    metrics, _ = exp.ihvp_check(cfg, w, data, 0, 2, "cpu")
    assert metrics["ihvp_steps"] > cfg["ihvp_ngrads"]
    assert metrics["ihvp_log10_relerr_f64"] < -8 and metrics["ihvp_log10_relerr_reference"] < -8
    assert -7 < metrics["ihvp_log10_relerr_f32"] < -1, "float32 is visibly less exact, but not wrong"


def test_quick_run_gives_every_claimed_metric(tuned_record):
    cfg, seeds = _quick()
    res = run(exp.EXPERIMENT, cfg, seeds, Env("cpu", repo_root() / "data", quick=True), workers=1)
    for claim in get("mfac_matrix_free_second_order").spec.claims:
        for ref in (claim.condition.metric, claim.condition.minus):
            if ref:
                arm, metric = ref.split(".", 1)
                assert all(math.isfinite(v) for v in res.metrics[arm][metric]), ref
    assert res.metrics["sgdm_cosine"]["digits_mlp_lr"] == [0.05]
