"""The GG-prior entry's wiring: exported low-bit metrics, shared data/init stream, options that matter."""

import pytest
import torch

import zoo.experiments.generalized_gaussian_llm_priors as exp
from zoo.experiments._compressbench import fit, setting_config
from zoo.quant.generalized_gaussian import gg_rho
from zoo.workloads.classification import load_base, make_task
from tests.experiments.budgets import quick_env, spec_budget

ID = "generalized_gaussian_llm_priors"


@pytest.fixture(scope="module")
def setup():
    cfg, _ = spec_budget(ID)
    cfg = setting_config(cfg, None)
    cfg.update(epochs=2, latency_repeats=1)
    return cfg, load_base(cfg["dataset"], quick_env().data_dir, "cpu")


def _fit(setup, arm, **over):
    cfg, base = setup
    spec = dict(cfg["arms"][arm]); m = spec.pop("method"); spec.update(over)
    torch.manual_seed(0)
    task = make_task(cfg, base, 0)
    return fit(m, spec, task, cfg, 0, "cpu", arm=arm).metrics


@pytest.fixture(scope="module")
def runs(setup):
    return {a: _fit(setup, a) for a in ("dense", "gauss", "gg_shaped")}


def test_metrics_are_the_exported_low_bit_model(runs):
    dense, gauss, gg = runs["dense"], runs["gauss"], runs["gg_shaped"]
    for r in (gauss, gg):
        assert r["export_gap"] < 1e-4
        assert r["test_acc"] == r["masked_test_acc"]
        assert r["ptq_drop"] == pytest.approx(r["float_acc"] - r["test_acc"])
        assert r["bits_per_param"] < 2.0 + 1.0  # 2-bit codes plus per-channel scales and biases
        assert r["bytes"] < dense["bytes"] / 5
    assert dense["ptq_drop"] == 0.0 and dense["bits_per_param"] > 30


def test_arms_share_data_and_the_float_model_is_the_reference(runs):
    # gauss and dense are the same float model (same init stream, data, batch order)
    assert runs["gauss"]["float_acc"] == runs["dense"]["float_acc"] == runs["dense"]["test_acc"]


def test_beta_and_penalty_change_the_weights(setup, runs):
    init_only = _fit(setup, "gg_init")
    assert runs["gauss"]["fitted_beta"] > init_only["fitted_beta"] + 0.2
    assert runs["gg_shaped"]["fitted_beta"] < init_only["fitted_beta"]  # the penalty pulls further toward beta=1
    off = _fit(setup, "gg_shaped", lam=0.0)
    assert off["float_acc"] == init_only["float_acc"] and off["fitted_beta"] == init_only["fitted_beta"]


def test_penalty_target_is_respected(setup):
    heavy = _fit(setup, "gg_shaped", lam=5.0, shape_beta=0.7)
    light = _fit(setup, "gg_shaped", lam=5.0, shape_beta=3.0)
    assert heavy["fitted_beta"] < 1.0 < light["fitted_beta"]


def test_fit_beta_inverts_rho():
    torch.manual_seed(0)
    from zoo.quant.generalized_gaussian import gg_sample
    for b in (0.8, 1.5, 3.0):
        assert exp.fit_beta(gg_sample((100_000,), b)) == pytest.approx(b, rel=0.05)
    assert gg_rho(exp.fit_beta(torch.randn(100_000))) == pytest.approx(gg_rho(2.0), abs=0.005)
