"""The selective-weight-decay entry's wiring: exported metrics, the quantile option matters."""

import pytest
import torch

import zoo.experiments.selective_weight_decay_pruning  # noqa: F401  (registers swd)
from zoo.experiments._compressbench import fit, setting_config
from zoo.workloads.classification import load_base, make_task
from tests.experiments.budgets import quick_env, spec_budget

ID = "selective_weight_decay_pruning"


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
    return fit(m, spec, make_task(cfg, base, 0), cfg, 0, "cpu", arm=arm).metrics


def test_exported_model_is_the_target_sparsity_and_smaller(setup):
    dense, swd = _fit(setup, "dense"), _fit(setup, "swd_s95")
    assert swd["export_gap"] < 1e-4
    assert swd["kept_params"] == pytest.approx(0.05, abs=0.005)
    assert swd["bytes"] < dense["bytes"] / 5


def test_zero_decay_is_gmp_and_the_quantile_changes_the_result(setup):
    gmp = _fit(setup, "gmp_s95")
    off = _fit(setup, "swd_s95", lmbda=0.0)
    assert off["test_acc"] == gmp["test_acc"] and off["nonzero"] == gmp["nonzero"]
    a = _fit(setup, "swd_s95", lmbda=0.05, quantile=0.5)
    b = _fit(setup, "swd_s95", lmbda=0.05, quantile=1.0)
    assert a["test_acc"] != b["test_acc"]
