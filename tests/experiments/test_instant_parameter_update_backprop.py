"""Wiring of zoo.experiments.instant_parameter_update_backprop: the instant arm trains the shared
loop's model, initialisation and batches (its stale variant reproduces the SGD arm), and differs."""

from __future__ import annotations

import pytest

from tests.experiments.local_rules import hand_table, job, quick
from zoo.experiments import _local_rules
from zoo.experiments import instant_parameter_update_backprop as exp
from zoo.experiments._optbench import job_arms, optbench, slug

ID = "instant_parameter_update_backprop"


def test_job_arms_share_one_grid() -> None:
    cfg = {"workloads": ["digits_mlp"], "sgd_lrs": [0.03, 0.1]}
    assert set(job_arms(exp._methods(cfg), cfg)) == {
        "instant_lr0_03__digits_mlp", "instant_lr0_1__digits_mlp", "sgd__digits_mlp__lr0_03", "sgd__digits_mlp__lr0_1",
        "adam_tuned__digits_mlp"}


def test_instant_grid_is_picked_by_validation() -> None:
    cfg = {"workloads": ["digits_mlp"], "sgd_lrs": [0.03, 0.1, 0.3]}
    table = hand_table([f"instant_lr{slug(lr)}__digits_mlp" for lr in cfg["sgd_lrs"]], [0, 1, 2],
                       val=[50.0, 60.0, 70.0], test=[90.0, 50.0, 40.0])
    derived: dict = {}
    _local_rules.grid_derive(exp._grids)(cfg, table, derived)
    assert derived["instant"]["digits_mlp_lr"] == [0.3] * 3 and derived["instant"]["digits_mlp_test_acc"] == [40.0, 39.0, 38.0]


def test_stale_instant_reproduces_the_sgd_arm_and_instant_differs() -> None:
    cfg, _ = quick(ID)
    cfg = {**cfg, "workloads": ["mnist1d_mlp"], "epochs": {"mnist1d_mlp": 2}}
    lr = cfg["sgd_lrs"][0]
    sgd = job(exp.EXPERIMENT, cfg, f"sgd__mnist1d_mlp__lr{slug(lr)}")
    inst = job(exp.EXPERIMENT, cfg, f"instant_lr{slug(lr)}__mnist1d_mlp")
    stale_exp = optbench(ID, lambda c: {f"instant_lr{slug(v)}": _local_rules.instant(v, through="stale") for v in c["sgd_lrs"]})
    stale = job(stale_exp, cfg, f"instant_lr{slug(lr)}__mnist1d_mlp")
    assert stale.series["train_loss"] == pytest.approx(sgd.series["train_loss"], rel=1e-5)
    assert stale.metrics["test_acc"] == pytest.approx(sgd.metrics["test_acc"], abs=0.11)
    assert inst.series["train_loss"] != pytest.approx(sgd.series["train_loss"], rel=1e-7)
    assert inst.series["train_loss"] != pytest.approx(stale.series["train_loss"], rel=1e-7)
    assert inst.metrics["grad_evals"] == sgd.metrics["grad_evals"]
