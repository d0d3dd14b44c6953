"""Wiring tests for zoo.experiments.target_based_surrogates.

* each arm builds the optimizer it names: SSO with the grid's eta as its target-space step and
  the configured m (one inner step for sso_m1), plain SGD at the grid's lr, the tuned SGD-momentum
  baseline; the SSO loss hands its targets to the optimizer of its own job;
* the speedup counts SGD's epochs over the first epoch at which SSO reaches SGD's final loss.
"""

from __future__ import annotations

import torch

from zoo.catalogue import get
from zoo.experiments import target_based_surrogates as exp
from zoo.optim.sso import SSO
from zoo.workloads.optim import get_workload


def _cfg():
    return dict(get("target_based_surrogates").spec.reproduction.config)


def test_each_arm_builds_its_optimizer_and_the_loss_feeds_its_own_sso():
    cfg = _cfg()
    methods = exp._methods(cfg)
    assert set(methods) == {"sso", "sso_m1", "sgd", "sgdm_tuned"}
    assert methods["sso"].lrs == tuple(cfg["sso_etas"]) and methods["sgd"].lrs == tuple(cfg["sgd_lrs"])
    w = get_workload("digits_logreg")
    for name, m in (("sso", cfg["m"]), ("sso_m1", 1)):
        model = torch.nn.Linear(4, 3)
        opt, _ = methods[name].build(list(model.parameters()), 10, 3.0, cfg, w)
        assert type(opt) is SSO and opt.m == m and opt.eta == 3.0
        x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
        value = methods[name].loss(model, x, y)
        assert opt._targets is not None and torch.equal(opt._targets[1], model(x).detach())
        assert value.item() == torch.nn.functional.cross_entropy(model(x), y).item()
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd, _ = methods["sgd"].build(params, 10, 0.3, cfg, w)
    assert type(sgd) is torch.optim.SGD and sgd.param_groups[0]["lr"] == 0.3 and sgd.param_groups[0]["momentum"] == 0
    assert methods["sgdm_tuned"].tuned_as == "sgdm"
    sgdm, _ = methods["sgdm_tuned"].build(params, 10, 0.05, cfg, w)
    assert sgdm.param_groups[0]["momentum"] == 0.9 and sgdm.param_groups[0]["lr"] == 0.05


def test_speedup():
    sgd = [1.0, 0.8, 0.6, 0.5]
    assert exp.speedup(sgd, [0.7, 0.5, 0.4, 0.3]) == 4 / 2
    assert exp.speedup(sgd, [0.5, 0.4, 0.3, 0.2]) == 4.0
    assert exp.speedup(sgd, [0.9, 0.8, 0.7, 0.6]) == 0.0
