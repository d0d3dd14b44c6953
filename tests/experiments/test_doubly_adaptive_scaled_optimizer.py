"""Wiring tests for zoo.experiments.doubly_adaptive_scaled_optimizer.

* every arm builds the optimizer it names, at the settings the spec states, and the tuned arm
  reads its learning rate from the tuned-baselines record;
* the Hessian-based arms train on a loss whose gradients carry their graph (exact products), the
  others on the workload's own loss; the loss is cross-entropy or MSE by the target's dtype.
"""

from __future__ import annotations

import pytest
import torch

from zoo.experiments import doubly_adaptive_scaled_optimizer as exp
from zoo.optim.oasis import OASIS
from zoo.workloads.optim import get_workload

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")


def test_every_arm_builds_its_optimizer():
    methods = exp._methods({})
    assert set(methods) == {"oasis", "oasis_alpha1e_3", "adahessian", "adam_default", "adam_tuned"}
    w = get_workload("digits_logreg")
    params = [torch.nn.Parameter(torch.zeros(3))]
    cases = {
        "oasis": (OASIS, {"lr": 1.0, "alpha": 1e-5, "beta2": 0.99, "eta": 1e-3}),
        "oasis_alpha1e_3": (OASIS, {"alpha": 1e-3}),
        "adahessian": (pytorch_optimizer.AdaHessian, {"lr": 0.1}),
        "adam_default": (torch.optim.Adam, {"lr": 1e-3}),
        "adam_tuned": (torch.optim.Adam, {"lr": 0.0123}),
    }
    for name, (cls, kw) in cases.items():
        meth = methods[name]
        opt, sched = meth.build(params, 10, 0.0123 if meth.tuned_as else None, {}, w)
        assert type(opt) is cls and sched is None, name
        for k, v in kw.items():
            assert opt.param_groups[0][k] == v, (name, k)
        assert (meth.loss is exp.hessian_loss) == (name in ("oasis", "oasis_alpha1e_3", "adahessian")), name
    assert methods["adam_tuned"].tuned_as == "adam"
    assert methods["oasis"].build(params, 10, None, {}, w)[0].hvp == "autograd"


def test_the_losses():
    model = torch.nn.Linear(2, 3).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1, 0])
    assert exp.workload_loss(model, x, y).item() == pytest.approx(torch.nn.functional.cross_entropy(model(x), y).item())
    yr = torch.randn(5, 3, dtype=torch.float64)
    assert exp.workload_loss(model, x, yr).item() == pytest.approx(torch.nn.functional.mse_loss(model(x), yr).item())
    value = exp.hessian_loss(model, x, y)
    assert value.is_leaf and all(p.grad.requires_grad for p in model.parameters())
