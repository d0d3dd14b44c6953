"""The LOBSTER entry's wiring: exported metrics, shared init, lmbda matters."""

import pytest
import torch

import zoo.experiments.lobster_sensitivity_regularization as exp
from zoo.experiments._compressbench import fit, setting_config
from zoo.workloads.classification import load_base, make_task
from tests.experiments.budgets import quick_env, spec_budget

ID = "lobster_sensitivity_regularization"


@pytest.fixture(scope="module")
def setup():
    cfg, _ = spec_budget(ID)
    cfg = setting_config(cfg, None)
    cfg.update(epochs=2, n_train=400, latency_repeats=1)
    return cfg, load_base(cfg["dataset"], quick_env().data_dir, "cpu")


def _fit(setup, arm, **over):
    cfg, base = setup
    spec = dict(cfg["arms"][arm]); m = spec.pop("method"); spec.update(over)
    torch.manual_seed(0)
    task = make_task(cfg, base, 0)
    return fit(m, spec, task, cfg, 0, "cpu", arm=arm).metrics


def test_exported_model_is_the_target_sparsity_and_smaller(setup):
    dense, lob = _fit(setup, "dense"), _fit(setup, "lobster_s98")
    assert lob["export_gap"] < 1e-4
    assert lob["kept_params"] == pytest.approx(0.02, abs=0.005)
    assert lob["bytes"] < dense["bytes"] / 10
    assert lob["test_acc"] == lob["masked_test_acc"]


def test_lmbda_changes_the_result_and_zero_lmbda_is_gmp(setup):
    gmp = _fit(setup, "gmp_s98")
    off = _fit(setup, "lobster_s98", lmbda=0.0)
    on = _fit(setup, "lobster_s98", lmbda=0.05)
    assert off["test_acc"] == gmp["test_acc"] and off["nonzero"] == gmp["nonzero"]  # same init, data, schedule
    assert on["test_acc"] != gmp["test_acc"]
