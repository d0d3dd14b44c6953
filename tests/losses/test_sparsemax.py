"""Tests for zoo.losses.sparsemax: the closed form by hand, the paper's properties, the loss, entmax as oracle."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo.losses.sparsemax import (Sparsemax, SparsemaxLoss, SparsemaxMultilabelLoss, sparsemax, sparsemax_loss,
                                  sparsemax_multilabel_loss, sparsemax_threshold)


def _t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def test_sparsemax_by_hand() -> None:
    """z = (1, 0.5, -1): k(z) = 2 (1 + 2 * 0.5 > 1.5; 1 + 3 * (-1) < 0.5), tau = (1.5 - 1) / 2 = 1/4."""
    z = _t(1.0, 0.5, -1.0)
    tau, k = sparsemax_threshold(z)
    assert int(k) == 2 and float(tau) == pytest.approx(0.25)
    torch.testing.assert_close(sparsemax(z), _t(0.75, 0.25, 0.0))
    # far apart scores: a one-hot; equal scores: uniform; shift invariance
    torch.testing.assert_close(sparsemax(_t(3.0, 0.0, 0.5)), _t(1.0, 0.0, 0.0))
    torch.testing.assert_close(sparsemax(_t(2.0, 2.0, 2.0, 2.0)), _t(0.25, 0.25, 0.25, 0.25))
    torch.testing.assert_close(sparsemax(z + 7.0), sparsemax(z))
    torch.testing.assert_close(Sparsemax(dim=0)(torch.stack([z, z], 1)), torch.stack([sparsemax(z)] * 2, 1))


def test_sparsemax_is_the_euclidean_projection_onto_the_simplex() -> None:
    """Against random simplex points: sparsemax is never farther from z (Eq. 2)."""
    g = torch.Generator().manual_seed(0)
    z = 2 * torch.randn(5, 6, generator=g, dtype=torch.float64)
    p = sparsemax(z)
    torch.testing.assert_close(p.sum(1), torch.ones(5, dtype=torch.float64))
    assert (p >= 0).all()
    for _ in range(50):
        r = torch.rand(5, 6, generator=g, dtype=torch.float64) ** 3
        r = r / r.sum(1, keepdim=True)
        assert ((p - z).pow(2).sum(1) <= (r - z).pow(2).sum(1) + 1e-12).all()


def test_jacobian_is_diag_s_minus_ss_over_support() -> None:
    z = _t(1.0, 0.5, -1.0, 0.8).requires_grad_(True)
    jac = torch.autograd.functional.jacobian(sparsemax, z)
    s = (sparsemax(z.detach()) > 0).double()
    torch.testing.assert_close(jac, torch.diag(s) - torch.outer(s, s) / s.sum())


def test_loss_by_hand_and_gradient() -> None:
    """z = (1, 0.5, -1), t = 0: -1 + 1/2 ((1 - 1/16) + (1/4 - 1/16)) + 1/2 = 0.0625; gradient p - e_t."""
    z = _t(1.0, 0.5, -1.0)[None].requires_grad_(True)
    for t, want in ((0, 0.0625), (1, 0.5625), (2, 2.0625)):
        loss = sparsemax_loss(z, torch.tensor([t]))
        torch.testing.assert_close(loss.detach(), _t(want)[0])
        (g,) = torch.autograd.grad(loss, z)
        torch.testing.assert_close(g, (_t(0.75, 0.25, 0.0) - F.one_hot(torch.tensor(t), 3).double())[None])
    # zero exactly when the target wins by a margin of 1 (the Huber-like separation, Prop. 3)
    torch.testing.assert_close(sparsemax_loss(_t(2.0, 1.0, 0.0)[None], torch.tensor([0])), _t(0.0)[0])
    assert float(sparsemax_loss(_t(1.9, 1.0, 0.0)[None], torch.tensor([0]))) > 0


def test_loss_is_nonnegative_and_probability_targets_agree_with_indices() -> None:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(20, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (20,), generator=g)
    per = sparsemax_loss(z, y, reduction="none")
    assert (per >= -1e-12).all()
    torch.testing.assert_close(sparsemax_loss(z, F.one_hot(y, 5).double(), reduction="none"), per)
    w = torch.rand(5, generator=g, dtype=torch.float64) + 0.5
    torch.testing.assert_close(SparsemaxLoss(weight=w)(z, y), (w[y] * per).sum() / w[y].sum())


def test_multilabel_proportions_and_gradient() -> None:
    """Labels {0, 2} of 4: q = (1/2, 0, 1/2, 0); the gradient is sparsemax(z) - q."""
    z = _t(1.0, 0.2, 0.9, -1.0)[None].requires_grad_(True)
    y = _t(1.0, 0.0, 1.0, 0.0)[None]
    q = y / 2
    loss = sparsemax_multilabel_loss(z, y)
    torch.testing.assert_close(loss, sparsemax_loss(z, q))
    (g,) = torch.autograd.grad(loss, z)
    torch.testing.assert_close(g, sparsemax(z.detach()) - q)
    # 1/2 ||p - q||^2 style: zero when the scores make sparsemax(z) = q with margin
    torch.testing.assert_close(sparsemax_multilabel_loss(_t(1.0, -5.0, 1.0, -5.0)[None], y), _t(0.0)[0])
    torch.testing.assert_close(SparsemaxMultilabelLoss(reduction="sum")(z.detach(), y), loss.detach())


def test_masked_scores_get_zero_probability_and_gradient() -> None:
    """-inf is a masked class: the result is sparsemax of the finite scores; entmax gives NaN here (entmax#9)."""
    z = _t(1.0, float("-inf"), 0.5, -1.0, float("-inf"))[None].requires_grad_(True)
    p = sparsemax(z)
    torch.testing.assert_close(p.detach(), _t(0.75, 0.0, 0.25, 0.0, 0.0)[None])
    loss = sparsemax_loss(z, torch.tensor([2]))
    torch.testing.assert_close(loss.detach(), _t(0.5625)[0])
    (g,) = torch.autograd.grad(loss, z)
    assert torch.isfinite(g).all() and g[0, 1] == 0 and g[0, 4] == 0
    (gp,) = torch.autograd.grad(p[0, 0], z)
    assert torch.isfinite(gp).all() and gp[0, 1] == 0


# --- differential test against entmax (deep-spin), finite inputs --------------------------------


def test_matches_entmax_on_finite_inputs() -> None:
    entmax = pytest.importorskip("entmax")
    g = torch.Generator().manual_seed(3)
    for scale in (0.1, 1.0, 5.0):
        z = scale * torch.randn(64, 11, generator=g, dtype=torch.float64)
        y = torch.randint(0, 11, (64,), generator=g)
        torch.testing.assert_close(sparsemax(z), entmax.sparsemax(z, dim=-1))
        torch.testing.assert_close(sparsemax(z.T, dim=0), entmax.sparsemax(z.T, dim=0))
        torch.testing.assert_close(sparsemax_loss(z, y, reduction="none"), entmax.sparsemax_loss(z, y))
        torch.testing.assert_close(SparsemaxLoss()(z, y), entmax.SparsemaxLoss()(z, y))
        torch.testing.assert_close(SparsemaxLoss(reduction="sum")(z, y), entmax.SparsemaxLoss(reduction="sum")(z, y))
        za = z.clone().requires_grad_(True)
        zb = z.clone().requires_grad_(True)
        (ga,) = torch.autograd.grad(sparsemax_loss(za, y), za)
        (gb,) = torch.autograd.grad(entmax.SparsemaxLoss()(zb, y), zb)
        torch.testing.assert_close(ga, gb)
        v = torch.randn(64, 11, generator=g, dtype=torch.float64)
        (ja,) = torch.autograd.grad((sparsemax(za) * v).sum(), za)
        (jb,) = torch.autograd.grad((entmax.sparsemax(zb, dim=-1) * v).sum(), zb)
        torch.testing.assert_close(ja, jb)
