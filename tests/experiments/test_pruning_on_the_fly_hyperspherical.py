"""The pruning-on-the-fly entry's wiring: exported sparse metrics, projection during training, options matter."""

import pytest
import torch

import zoo.experiments.pruning_on_the_fly_hyperspherical as exp
from zoo.experiments._compressbench import fit, pretrain, setting_config
from zoo.pruning.structure import prunable
from zoo.workloads.classification import load_base, make_task
from tests.experiments.budgets import quick_env, spec_budget

ID = "pruning_on_the_fly_hyperspherical"


def _setup(**over):
    cfg, _ = spec_budget(ID)
    cfg = setting_config(cfg, None)
    cfg.update(pretrain_epochs=1, epochs=1, n_train=400, n_test=300, latency_repeats=1, latency_batch=16)
    cfg.update(over)
    base = load_base(cfg["dataset"], quick_env().data_dir, "cpu")
    torch.manual_seed(0)
    pre = {k: v.clone() for k, v in pretrain(make_task(cfg, base, 0), cfg, 0, "cpu").state_dict().items()}
    return cfg, base, pre


@pytest.fixture(scope="module")
def setup():
    return _setup()


def _fit(setup, arm, **over):
    cfg, base, pre = setup
    spec = dict(cfg["arms"][arm]); m = spec.pop("method"); spec.update(over)
    torch.manual_seed(0)
    return fit(m, spec, make_task(cfg, base, 0), cfg, 0, "cpu", pre, arm=arm).metrics


def test_exported_model_has_the_target_sparsity_and_is_smaller(setup):
    dense = _fit(setup, "dense")
    for arm, target in (("otf_s90", 0.9), ("oneshot_s90", 0.9), ("otf_s50", 0.5)):
        m = _fit(setup, arm)
        assert m["export_gap"] < 1e-4
        n_w = 784 * 300 + 300 * 100 + 100 * 10
        n_b = 300 + 100 + 10
        # every layer keeps (1 - target) of its weights (dead units' biases may be shrunk away)
        assert m["nonzero"] <= round((1 - target) * n_w) + n_b + 3
        assert m["nonzero"] >= 0.95 * round((1 - target) * n_w)  # export may drop units left without inputs
        assert m["bytes"] < dense["bytes"] * (0.85 if target == 0.5 else 0.2)
        assert m["unpruned_test_acc"] - m["test_acc"] == pytest.approx(m["prune_drop"])


def test_training_keeps_every_row_on_the_unit_sphere_until_pruning(setup, monkeypatch):
    norms = []
    real = exp.OneShotMagnitude.compress

    def spy(self, model):
        norms.extend(m.weight.reshape(m.weight.shape[0], -1).norm(dim=1) for _, m in prunable(model))
        return real(self, model)

    monkeypatch.setattr(exp.OneShotMagnitude, "compress", spy)
    _fit(setup, "otf_s90")
    assert all(torch.allclose(n, torch.ones_like(n), atol=1e-5) for n in norms)
    norms.clear()
    _fit(setup, "oneshot_s90")
    assert not all(torch.allclose(n, torch.ones_like(n), atol=1e-3) for n in norms)


def test_without_penalty_and_projection_it_is_the_oneshot_baseline_and_options_change_it(setup):
    base = _fit(setup, "oneshot_s90")
    off = _fit(setup, "otf_s90", lmbda=0.0, project=False)
    assert off["test_acc"] == base["test_acc"] and off["unpruned_test_acc"] == base["unpruned_test_acc"]
    on = _fit(setup, "otf_s90")
    proj_only = _fit(setup, "otf_s90", lmbda=0.0)
    assert len({on["test_acc"], proj_only["test_acc"], base["test_acc"]}) == 3


def test_the_penalty_cuts_the_pruning_drop_at_90_percent():
    longer = _setup(n_train=1000, epochs=3, batch_size=64)
    base, otf = _fit(longer, "oneshot_s90"), _fit(longer, "otf_s90")
    assert otf["prune_drop"] < base["prune_drop"] - 10  # 20.7 vs 50.0 at this budget
