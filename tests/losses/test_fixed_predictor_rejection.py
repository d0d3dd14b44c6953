"""The fixed-predictor rejection loss and its surrogate (Mohri et al. 2024): values, minimiser, options."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.losses.fixed_predictor_rejection import (
    RejectionSurrogateLoss, bayes_rejector_score, rejection_loss, rejection_surrogate)


def test_rejection_loss_by_hand() -> None:
    r = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.0])
    correct = torch.tensor([1, 0, 1, 0, 0])
    # accept right: 0; accept wrong: 1; reject: c; r = 0 rejects
    per = rejection_loss(r, correct, c=0.2, reduction="none")
    torch.testing.assert_close(per, torch.tensor([0.0, 1.0, 0.2, 0.2, 0.2]))
    torch.testing.assert_close(rejection_loss(r, correct, c=0.2), per.mean())


def test_surrogate_by_hand() -> None:
    r = torch.tensor([0.5, -0.25], dtype=torch.float64)
    correct = torch.tensor([0, 1])
    per = rejection_surrogate(r, correct, c=0.2, alpha=2.0, reduction="none")
    want = torch.tensor([math.exp(1.0) + 0.2 * math.exp(-1.0), 0.2 * math.exp(0.5)], dtype=torch.float64)
    torch.testing.assert_close(per, want)
    # beta sets the scale of the rejection term only
    per_b = rejection_surrogate(r, correct, c=0.2, alpha=2.0, beta=1.0, reduction="none")
    torch.testing.assert_close(per_b, torch.tensor([math.exp(1.0) + 0.2 * math.exp(-0.5), 0.2 * math.exp(0.25)],
                                                   dtype=torch.float64))
    # it bounds the rejection loss from above (exp(alpha r) >= 1[r > 0], exp(-alpha r) >= 1[r <= 0])
    g = torch.Generator().manual_seed(0)
    rr = torch.randn(200, generator=g, dtype=torch.float64)
    cc = torch.randint(0, 2, (200,), generator=g)
    assert (rejection_surrogate(rr, cc, 0.3, 1.0, reduction="none") >= rejection_loss(rr, cc, 0.3, reduction="none")).all()


@pytest.mark.parametrize("eta", [0.05, 0.15, 0.3, 0.6])
def test_pointwise_minimiser_is_chows_rule(eta: float) -> None:
    """argmin_r eta exp(a r) + c exp(-a r) = log(c / eta) / (2 a): accept iff eta < c."""
    c, alpha = 0.2, 4.0
    r = torch.linspace(-2, 2, 40001, dtype=torch.float64)
    risk = eta * torch.exp(alpha * r) + c * torch.exp(-alpha * r)
    r_star = float(r[risk.argmin()])
    assert r_star == pytest.approx(float(bayes_rejector_score(torch.tensor(eta), c, alpha)), abs=2e-4)
    assert (r_star > 0) == (eta < c)
    # and the expected surrogate over a = -1 w.p. eta is exactly that risk
    correct = torch.tensor([0, 1])
    w = torch.tensor([eta, 1 - eta], dtype=torch.float64)
    for rv in (-0.3, 0.1):
        per = rejection_surrogate(torch.full((2,), rv, dtype=torch.float64), correct, c, alpha, reduction="none")
        assert float((w * per).sum()) == pytest.approx(eta * math.exp(alpha * rv) + c * math.exp(-alpha * rv))


def test_gradient_direction() -> None:
    """Wrong outputs push r down (reject), right ones only feel the rejection cost (accept)."""
    r = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(rejection_surrogate(r, torch.tensor([0, 1]), c=0.2, alpha=2.0, reduction="sum"), r)
    torch.testing.assert_close(g, torch.tensor([2.0 - 0.4, -0.4], dtype=torch.float64))


def test_options_and_safety() -> None:
    r = torch.tensor([100.0, -100.0, 0.3], dtype=torch.float64, requires_grad=True)
    correct = torch.tensor([0, 1, -100])
    v = rejection_surrogate(r, correct, reduction="none")
    assert torch.isfinite(v).all() and v[2] == 0
    (g,) = torch.autograd.grad(v.sum(), r)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(rejection_surrogate(r, correct), v[:2].mean())
    torch.testing.assert_close(rejection_surrogate(r, correct, reduction="sum"), v.sum())
    for bad in ({"c": 0.0}, {"c": 1.0}, {"alpha": 0.0}, {"reduction": "avg"}):
        with pytest.raises(ValueError):
            rejection_surrogate(r, correct, **bad)
    m = RejectionSurrogateLoss(c=0.3, alpha=2.0)
    torch.testing.assert_close(m(r, correct), rejection_surrogate(r, correct, 0.3, 2.0))
    assert "c=0.3" in repr(m)
