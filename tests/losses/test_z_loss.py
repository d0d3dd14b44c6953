"""Tests for zoo.losses.z_loss and zoo.losses.spherical_softmax: formulas by hand, invariances, options."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.losses.spherical_softmax import (LogSphericalSoftmaxLoss, LogTaylorSoftmaxLoss, log_spherical_softmax_loss,
                                          log_taylor_softmax_loss, spherical_softmax, taylor_softmax)
from zoo.losses.z_loss import ZLoss, z_loss, z_scores


def _t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def test_z_scores_and_z_loss_by_hand() -> None:
    """o = (3, 1, -1, 1): mean 1, population std sqrt((4 + 0 + 4 + 0) / 4) = sqrt 2, z = (sqrt2, 0, -sqrt2, 0)."""
    o = torch.tensor([[3.0, 1.0, -1.0, 1.0]], dtype=torch.float64)
    r2 = math.sqrt(2.0)
    torch.testing.assert_close(z_scores(o), torch.tensor([[r2, 0.0, -r2, 0.0]], dtype=torch.float64))
    y = torch.tensor([0, 2, 1])
    x = o.expand(3, 4)
    a, b = 0.5, 2.0
    want = _t(*(math.log1p(math.exp(a * (b - z))) / a for z in (r2, -r2, 0.0)))
    torch.testing.assert_close(z_loss(x, y, a=a, b=b, reduction="none"), want)
    torch.testing.assert_close(ZLoss(a, b, reduction="sum")(x, y), want.sum())
    torch.testing.assert_close(z_loss(x, y, a=a, b=b), want.mean())
    assert "a=0.5, b=2.0" in repr(ZLoss(a, b))


def test_z_loss_gradient_through_target_z_score() -> None:
    """dL/dz_c = -sigmoid(a (b - z_c)); the logit gradient is that times dz_c/do (checked against autograd of z)."""
    g = torch.Generator().manual_seed(0)
    o = torch.randn(1, 6, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([2])
    a, b = 2.0, 1.5
    (grad,) = torch.autograd.grad(z_loss(o, y, a=a, b=b), o)
    z = (o - o.mean()) / o.std(unbiased=False)
    (dz,) = torch.autograd.grad(z[0, 2], o)
    want = -torch.sigmoid(a * (b - z[0, 2].detach())) * dz
    torch.testing.assert_close(grad, want)
    # the logit gradient sums to zero (shift invariance) and is orthogonal to the logits' deviation (scale)
    assert abs(float(grad.sum())) < 1e-12
    assert abs(float((grad * (o.detach() - o.detach().mean())).sum())) < 1e-12


# float64: invariance to 1e-6 (it is ~1e-13) over wide transforms; float32: the transformed inputs
# themselves are rounded (ulp(1e3) / spread), so moderate transforms and a 1e-5 tolerance
@pytest.mark.parametrize("dtype,tol,moves", [
    (torch.float64, 1e-6, ((1e-2, 0.0), (1.0, 50.0), (7.5, -3.0), (100.0, 1e3), (1e-3, -1e4))),
    (torch.float32, 1e-5, ((0.5, 0.0), (1.0, 5.0), (3.0, -2.0))),
])
def test_exact_shift_and_scale_invariance(dtype: torch.dtype, tol: float, moves: tuple) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 10, generator=g).to(dtype)
    y = torch.randint(0, 10, (32,), generator=g)
    base = z_loss(x, y, reduction="none")
    for alpha, beta in moves:
        moved = z_loss(alpha * x + beta, y, reduction="none")
        assert float((moved - base).abs().max()) <= tol * max(1.0, float(base.abs().max())), (alpha, beta)
    # softmax cross-entropy is shift- but not scale-invariant
    torch.testing.assert_close(F.cross_entropy(x + 5.0, y), F.cross_entropy(x, y))
    assert abs(float(F.cross_entropy(3 * x, y) - F.cross_entropy(x, y))) > 0.1


def test_z_loss_limits_and_b() -> None:
    """Large a: a hinge max(0, b - z_c); the loss falls as the target's z-score rises."""
    x = torch.tensor([[2.0, 0.0, -2.0]], dtype=torch.float64)  # z = (sqrt 1.5, 0, -sqrt 1.5)
    zc = math.sqrt(1.5)
    torch.testing.assert_close(z_loss(x, torch.tensor([1]), a=200.0, b=1.0), _t(1.0)[0], atol=1e-2, rtol=0)
    torch.testing.assert_close(z_loss(x, torch.tensor([0]), a=200.0, b=1.0), _t(0.0)[0], atol=1e-2, rtol=0)
    torch.testing.assert_close(z_loss(x, torch.tensor([0]), a=200.0, b=3.0), _t(3.0 - zc)[0], atol=1e-2, rtol=0)
    losses = [float(z_loss(x, torch.tensor([c]))) for c in (0, 1, 2)]
    assert losses[0] < losses[1] < losses[2]


def test_equal_logits_and_masked_classes() -> None:
    x = torch.zeros(2, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3])
    v = z_loss(x, y, a=1.0, b=3.0)
    torch.testing.assert_close(v.detach(), _t(math.log1p(math.exp(3.0)))[0])
    (g,) = torch.autograd.grad(v, x)
    assert torch.isfinite(g).all()
    # a -inf logit is an absent class: the statistics use the finite logits only
    xm = torch.tensor([[3.0, 1.0, -1.0, float("-inf")]], dtype=torch.float64)
    torch.testing.assert_close(z_loss(xm, torch.tensor([0])), z_loss(xm[:, :3], torch.tensor([0])))


def test_weight_and_ignore_index() -> None:
    x = torch.tensor([[3.0, 1.0, -1.0]] * 3, dtype=torch.float64)
    y = torch.tensor([0, 1, -100])
    per = z_loss(x[:2], y[:2], reduction="none")
    w = _t(2.0, 0.5, 1.0)
    torch.testing.assert_close(z_loss(x, y, weight=w), (per * _t(2.0, 0.5)).sum() / 2.5)
    torch.testing.assert_close(ZLoss(weight=w, reduction="none")(x, y), torch.cat([per * _t(2.0, 0.5), _t(0.0)]))
    with pytest.raises(ValueError):
        z_loss(x, y, a=0.0)


def test_taylor_and_spherical_softmax_by_hand() -> None:
    """o = (1, 0, -2): Taylor terms (2.5, 1, 1), spherical terms (1 + e, e, 4 + e)."""
    o = torch.tensor([[1.0, 0.0, -2.0]], dtype=torch.float64)
    torch.testing.assert_close(taylor_softmax(o), torch.tensor([[2.5, 1.0, 1.0]], dtype=torch.float64) / 4.5)
    e = 0.1
    torch.testing.assert_close(spherical_softmax(o, eps=e), torch.tensor([[1 + e, e, 4 + e]], dtype=torch.float64) / (5 + 3 * e))
    y = torch.tensor([0])
    torch.testing.assert_close(log_taylor_softmax_loss(o, y), _t(-math.log(2.5 / 4.5))[0])
    torch.testing.assert_close(LogTaylorSoftmaxLoss()(o, y), _t(-math.log(2.5 / 4.5))[0])
    torch.testing.assert_close(log_spherical_softmax_loss(o, y, eps=e), _t(-math.log((1 + e) / (5 + 3 * e)))[0])
    torch.testing.assert_close(LogSphericalSoftmaxLoss(eps=e)(o, torch.tensor([2])), _t(-math.log((4 + e) / (5 + 3 * e)))[0])
    # the spherical softmax is symmetric in the sign of a score; the Taylor softmax is not
    torch.testing.assert_close(spherical_softmax(-o, eps=e), spherical_softmax(o, eps=e))
    assert not torch.allclose(taylor_softmax(-o), taylor_softmax(o))
    with pytest.raises(ValueError):
        log_spherical_softmax_loss(o, y, eps=0.0)
