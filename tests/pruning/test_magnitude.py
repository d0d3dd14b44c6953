"""Gradual magnitude pruning: Zhu & Gupta's cubic schedule and exact masks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.pruning import GradualMagnitudePruning, cubic_sparsity, harden_magnitude, sparsity_of


def test_cubic_schedule_endpoints_and_shape():
    assert cubic_sparsity(0, 0.9, 10, 110) == 0.0
    assert cubic_sparsity(10, 0.9, 10, 110) == pytest.approx(0.0)
    assert cubic_sparsity(110, 0.9, 10, 110) == 0.9
    mid = cubic_sparsity(60, 0.9, 10, 110)
    assert mid == pytest.approx(0.9 * (1 - 0.5**3))  # prunes fast early, slowly late


def test_gmp_reaches_target_and_pruned_weights_stay_zero():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
    gmp = GradualMagnitudePruning(model, 0.9, begin_step=0, end_step=50, frequency=10, allocation="uniform")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(60):
        gmp.step(step)
        opt.zero_grad()
        model(torch.randn(8, 32)).square().mean().backward()
        opt.step()
    harden_magnitude(model)
    for layer in (model[0], model[2]):
        assert sparsity_of(layer.weight) == pytest.approx(round(0.9 * layer.weight.numel()) / layer.weight.numel())


def test_gmp_nm_keeps_n_per_group():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8))
    gmp = GradualMagnitudePruning(model, 0.0, begin_step=0, end_step=10, frequency=1, structure="1:4")
    for step in range(11):
        gmp.step(step)
    harden_magnitude(model)
    assert ((model[0].weight.reshape(8, -1, 4) != 0).sum(-1) == 1).all()
