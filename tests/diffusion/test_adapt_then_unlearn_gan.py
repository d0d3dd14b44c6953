"""Adapt-then-Unlearn library pieces: the per-tensor-mean parameter distance, the three repulsion
losses (hand values, and a descent step moves AWAY from theta_N), the EWC Fisher and penalty
(hand-computed), the non-saturating losses and the GAN step (the G regulariser reaches G only)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.unlearning.adapt_then_unlearn import (
    REPULSIONS,
    d_loss,
    ewc_fisher,
    ewc_penalty,
    g_loss,
    gan_step,
    param_sq_distance,
    repulsion_loss,
    snapshot,
)


def _lin(w: list[list[float]], b: list[float]) -> nn.Linear:
    m = nn.Linear(len(w[0]), len(w))
    with torch.no_grad():
        m.weight.copy_(torch.tensor(w))
        m.bias.copy_(torch.tensor(b))
    return m


def test_param_sq_distance_is_the_mean_over_tensors_of_mean_squares():
    a, b = _lin([[1.0, 3.0]], [2.0]), _lin([[0.0, 1.0]], [-1.0])
    # weight: mean(1, 4) = 2.5; bias: 9 -> (2.5 + 9) / 2
    assert float(param_sq_distance(a, snapshot(b))) == pytest.approx(5.75)
    assert float(param_sq_distance(a, snapshot(a))) == 0.0


def test_repulsion_hand_values_and_scale():
    d2 = torch.tensor(3.0)
    assert float(repulsion_loss(d2, "el2", alpha=0.5, scale=2.0)) == pytest.approx(math.exp(-0.75))
    assert float(repulsion_loss(d2, "nl2", scale=2.0)) == pytest.approx(-1.5)
    assert float(repulsion_loss(d2, "il2", scale=2.0)) == pytest.approx(2.0 / 3.0)
    assert float(repulsion_loss(d2, "el2", alpha=2.0)) == pytest.approx(math.exp(-6.0))
    with pytest.raises(ValueError):
        repulsion_loss(d2, "l1")


@pytest.mark.parametrize("kind", REPULSIONS)
def test_a_descent_step_on_the_repulsion_moves_away_from_theta_n(kind):
    torch.manual_seed(0)
    model, anchor_model = nn.Linear(3, 2), nn.Linear(3, 2)
    anchor = snapshot(anchor_model)
    before = float(param_sq_distance(model, anchor))
    loss = repulsion_loss(param_sq_distance(model, anchor), kind, alpha=1.0, scale=before)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    assert all(g.abs().sum() > 0 for g in grads)  # the gradient flows to theta
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            p -= 0.01 * g
    assert float(param_sq_distance(model, anchor)) > before
    assert all(not v.requires_grad for v in anchor.values())  # theta_N is a fixed anchor


def test_ewc_fisher_matches_the_hand_computed_squared_score():
    gen = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        gen.weight.fill_(0.7)
    disc = _lin([[1.5]], [0.2])
    z = torch.tensor([[1.0], [-2.0], [0.5]])
    fisher = ewc_fisher(gen, disc, lambda n: z, batches=2, batch_size=3)
    # ll = mean log sigmoid(1.5 * 0.7 z + 0.2); d ll / d w = mean(sigmoid(-(1.05 z + 0.2)) * 1.5 z)
    s = torch.sigmoid(-(1.05 * z + 0.2)) * 1.5 * z
    assert float(fisher["weight"]) == pytest.approx(float(s.mean()) ** 2, rel=1e-5)
    assert disc.weight.grad is None  # only the generator's parameters are differentiated


def test_ewc_penalty_hand_value():
    a, b = _lin([[1.0, 3.0]], [2.0]), _lin([[0.0, 1.0]], [-1.0])
    fisher = {"weight": torch.tensor([[2.0, 0.5]]), "bias": torch.tensor([0.1])}
    # 2 * 1 + 0.5 * 4 + 0.1 * 9
    assert float(ewc_penalty(a, snapshot(b), fisher)) == pytest.approx(4.9)


def test_non_saturating_losses():
    r, f = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.0])
    want = (F.softplus(torch.tensor([-0.5, 1.0])).mean() + F.softplus(f).mean())
    assert float(d_loss(r, f)) == pytest.approx(float(want))
    assert float(g_loss(f)) == pytest.approx(float(F.softplus(-f).mean()))


def _step(reg: float | None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    gen, disc = nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 1), nn.Flatten(0))
    g_opt, d_opt = torch.optim.SGD(gen.parameters(), lr=0.1), torch.optim.SGD(disc.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    latent = lambda n: torch.randn(n, 2, generator=g)  # noqa: E731
    real = torch.randn(8, 2, generator=torch.Generator().manual_seed(2))
    g_reg = None if reg is None else (lambda: reg * sum(p.sum() for p in gen.parameters()))
    gan_step(gen, disc, g_opt, d_opt, real, latent, g_reg)
    return snapshot(gen), snapshot(disc)


def test_gan_step_adds_the_regulariser_to_g_only():
    g0, d0 = _step(None)
    g1, d1 = _step(3.0)
    for k in g0:  # SGD: the regulariser's gradient 3 per parameter -> an extra -0.1 * 3 shift
        assert torch.allclose(g1[k] - g0[k], torch.full_like(g0[k], -0.3), atol=1e-6)
    for k in d0:
        assert torch.equal(d0[k], d1[k])
