"""The UDFC entry's wiring: metrics of the exported (smaller) model, arms share the pretrained model, compensate matters."""

import pytest
import torch

import zoo.experiments.unified_data_free_compression  # noqa: F401  (registers udfc)
from zoo.experiments._compressbench import fit, pretrain, setting_config
from zoo.workloads.classification import load_base, make_task
from tests.experiments.budgets import quick_env, spec_budget

ID = "unified_data_free_compression"


@pytest.fixture(scope="module")
def setup():
    cfg, _ = spec_budget(ID)
    cfg = setting_config(cfg, None)
    cfg.update(pretrain_epochs=2, n_train=600, latency_repeats=1, latency_batch=16)
    base = load_base(cfg["dataset"], quick_env().data_dir, "cpu")
    torch.manual_seed(0)
    task = make_task(cfg, base, 0)
    state = {k: v.detach().clone() for k, v in pretrain(task, cfg, 0, "cpu").state_dict().items()}
    return cfg, task, state


def _fit(setup, arm, **over):
    cfg, task, state = setup
    spec = dict(cfg["arms"][arm]); m = spec.pop("method"); spec.update(over)
    torch.manual_seed(0)
    return fit(m, spec, task, cfg, 0, "cpu", pretrained=state, arm=arm).metrics


def test_exported_model_has_the_target_size(setup):
    dense, udfc = _fit(setup, "dense"), _fit(setup, "udfc_p50_b4")
    assert udfc["export_gap"] < 1e-4
    # 784-150-50-10 after removing half of each hidden layer's rows (and the columns reading them)
    assert udfc["params"] == 784 * 150 + 150 + 150 * 50 + 50 + 50 * 10 + 10
    assert udfc["nonzero"] <= udfc["params"] < dense["params"] / 2
    assert udfc["bits_per_param"] < 0.5 * 4 + 0.5  # 4-bit codes of half the weights, plus scales/biases
    assert udfc["bytes"] < dense["bytes"] / 10


def test_arms_share_the_pretrained_model_and_compensation_changes_the_result(setup):
    dense = _fit(setup, "dense")
    # nothing removed or quantised: the compensated method is the dense model (S = I)
    same = _fit(setup, "udfc_p50", ratio=0.0)
    assert abs(same["test_acc"] - dense["test_acc"]) < 1e-9
    on, off = _fit(setup, "udfc_p50"), _fit(setup, "plain_p50")
    assert on["params"] == off["params"] and on["bytes"] == off["bytes"]
    assert on["test_acc"] != off["test_acc"]
