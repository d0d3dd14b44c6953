"""Pruning on-the-fly: unit-sphere projection and the bimodality penalty's direction."""

import math

import pytest
import torch
from torch import nn

from zoo.pruning.hyperspherical_on_the_fly import bimodal_penalty, model_penalty, project_model, project_rows, row_magnitude_gap
from zoo.pruning.magnitude import GradualMagnitudePruning


def test_project_rows_puts_every_row_on_the_unit_sphere():
    w = torch.randn(5, 3, 2, 2) * 7
    project_rows(w)
    assert torch.allclose(w.reshape(5, -1).norm(dim=1), torch.ones(5), atol=1e-6)


def test_project_model_reaches_the_weight_under_a_mask_parametrization():
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    GradualMagnitudePruning(model, 0.5, 0, 1)
    project_model(model)
    for m in (model[0], model[2]):
        assert torch.allclose(m.parametrizations.weight.original.norm(dim=1), torch.ones(m.out_features), atol=1e-6)


def test_penalty_value_small_group_mean_minus_large_group_mean():
    w = torch.tensor([[0.1, -0.2, 3.0, -4.0]])  # norm sqrt(25.05)
    n = math.sqrt(25.05)
    expect = 2.0 * ((0.1 + 0.2) / 2 - (3.0 + 4.0) / 2) / n
    assert float(bimodal_penalty(w, 0.5)) == pytest.approx(expect, rel=1e-6)
    # scale-free: the penalty sees the row's direction only
    assert float(bimodal_penalty(5 * w, 0.5)) == pytest.approx(expect, rel=1e-6)


def test_bimodal_rows_score_lower_than_flat_rows():
    flat = torch.ones(3, 10)
    bimodal = torch.cat([torch.full((3, 5), 0.01), torch.ones(3, 5)], 1)
    assert float(bimodal_penalty(bimodal, 0.5)) < float(bimodal_penalty(flat, 0.5)) == pytest.approx(0.0, abs=1e-6)


def test_descending_the_penalty_on_the_sphere_separates_the_two_groups():
    torch.manual_seed(0)
    lin = nn.Linear(50, 8)
    project_model(lin)
    before = row_magnitude_gap(lin.weight, 0.8)
    small_before = lin.weight.abs().sort(dim=1).values[:, :40].pow(2).sum(1).mean()
    opt = torch.optim.SGD(lin.parameters(), lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        model_penalty(lin, 0.8).backward()
        opt.step()
        project_model(lin)
    small_after = lin.weight.abs().sort(dim=1).values[:, :40].pow(2).sum(1).mean()
    assert small_after < 0.5 * small_before  # the pruned 80% carry far less of each unit row
    assert row_magnitude_gap(lin.weight, 0.8) > 2 * before


def test_penalty_has_gradient_and_is_zero_without_a_split():
    w = torch.randn(4, 10, requires_grad=True)
    bimodal_penalty(w, 0.5).backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert float(bimodal_penalty(w, 0.0)) == 0.0
