"""Normalized losses, APL combinations, GCE and SCE: the papers' formulas, limits and invariances."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.losses.active_passive import (ActivePassiveLoss, active_passive_loss, mean_absolute_error, nce_mae,
                                       nce_rce, nfl_mae, nfl_rce)
from zoo.losses.generalized_cross_entropy import GeneralizedCrossEntropyLoss, generalized_cross_entropy
from zoo.losses.normalized_losses import (normalized_cross_entropy, normalized_focal_loss, normalized_loss,
                                          focal_loss_matrix)
from zoo.losses.symmetric_cross_entropy import reverse_cross_entropy, symmetric_cross_entropy


# These tests compare formulas in float64 (the default dtype is restored after each).
pytestmark = pytest.mark.usefixtures("float64_default")


def _x(n: int = 7, c: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)


def test_nce_on_hand_computed_values() -> None:
    x = torch.tensor([[2.0, 0.0, -1.0]])
    logp = F.log_softmax(x, -1)[0]
    want = float(logp[0] / logp.sum())
    assert normalized_cross_entropy(x, torch.tensor([0])).item() == pytest.approx(want)
    # p = softmax([2, 0, -1]) = [0.8438, 0.1142, 0.0420]; NCE_0 = 0.1698 / (0.1698 + 2.1698 + 3.1698)
    assert want == pytest.approx(0.16984 / 5.50948, rel=1e-3)


@pytest.mark.parametrize("fn", [normalized_cross_entropy, lambda x, y, **k: normalized_focal_loss(x, y, gamma=0.5, **k),
                                lambda x, y, **k: normalized_focal_loss(x, y, gamma=2.0, **k)])
def test_normalized_losses_sum_to_one_over_labels(fn) -> None:
    """The paper's defining property (Eq. 3): sum_j L_norm(f(x), j) = 1 for every x."""
    x, _ = _x(n=9, c=6)
    total = sum(fn(x, torch.full((9,), j), reduction="none") for j in range(6))
    torch.testing.assert_close(total, torch.ones(9))
    # and each value lies in [0, 1]
    v = fn(x, torch.zeros(9, dtype=torch.long), reduction="none")
    assert ((v >= 0) & (v <= 1)).all()


def test_normalized_sum_to_one_with_masked_classes() -> None:
    x, _ = _x(n=4, c=5)
    x[:, 3] = float("-inf")
    total = sum(normalized_cross_entropy(x, torch.full((4,), j), reduction="none") for j in (0, 1, 2, 4))
    torch.testing.assert_close(total, torch.ones(4))


def test_nfl_is_focal_ratio_and_gamma_zero_is_nce() -> None:
    x, y = _x()
    p = F.softmax(x, -1)
    fl = -(1 - p) ** 0.5 * p.log()
    want = fl.gather(1, y[:, None]).squeeze(1) / fl.sum(-1)
    torch.testing.assert_close(normalized_focal_loss(x, y, gamma=0.5, reduction="none"), want)
    torch.testing.assert_close(normalized_focal_loss(x, y, gamma=0.0), normalized_cross_entropy(x, y))
    fl2 = -(1 - p) ** 2.0 * p.log()
    want2 = fl2.gather(1, y[:, None]).squeeze(1) / fl2.sum(-1)
    torch.testing.assert_close(normalized_focal_loss(x, y, gamma=2.0, reduction="none"), want2)


def test_normalized_loss_of_any_matrix() -> None:
    m = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    torch.testing.assert_close(normalized_loss(m, torch.tensor([1, 0])), torch.tensor([0.75, 0.5]))


def test_passive_losses_and_sce() -> None:
    x, y = _x()
    p = F.softmax(x, -1)
    onehot = F.one_hot(y, 5).double()
    torch.testing.assert_close(mean_absolute_error(x, y, reduction="none"), (p - onehot).abs().sum(-1))
    # RCE = -sum_k p_k log q_k with log 0 := A
    logq = torch.where(onehot > 0, torch.zeros_like(p), torch.full_like(p, -4.0))
    rce = -(p * logq).sum(-1)
    torch.testing.assert_close(reverse_cross_entropy(x, y, reduction="none"), rce)
    torch.testing.assert_close(reverse_cross_entropy(x, y, log_zero=-2.0, reduction="none"), rce / 2)
    ce = F.cross_entropy(x, y, reduction="none")
    torch.testing.assert_close(symmetric_cross_entropy(x, y, alpha=0.3, beta=2.0, reduction="none"), 0.3 * ce + 2.0 * rce)
    # RCE and MAE are symmetric: their sum over labels is a constant
    tot = sum(reverse_cross_entropy(x, torch.full((7,), j), reduction="none") for j in range(5))
    torch.testing.assert_close(tot, torch.full((7,), 4.0 * 4))


def test_apl_is_alpha_active_plus_beta_passive() -> None:
    x, y = _x()
    nce = normalized_cross_entropy(x, y, reduction="none")
    nfl = normalized_focal_loss(x, y, gamma=0.5, reduction="none")
    rce = reverse_cross_entropy(x, y, reduction="none")
    mae = mean_absolute_error(x, y, reduction="none")
    torch.testing.assert_close(nce_rce(x, y, alpha=1.5, beta=10.0, reduction="none"), 1.5 * nce + 10.0 * rce)
    torch.testing.assert_close(nce_mae(x, y, alpha=0.5, beta=3.0, reduction="none"), 0.5 * nce + 3.0 * mae)
    torch.testing.assert_close(nfl_rce(x, y, alpha=2.0, beta=1.0, reduction="none"), 2.0 * nfl + rce)
    torch.testing.assert_close(nfl_mae(x, y, reduction="none"), nfl + mae)
    m = ActivePassiveLoss("nfl", "rce", alpha=2.0, beta=1.0, gamma=0.5, log_zero=-4.0)
    torch.testing.assert_close(m(x, y), (2.0 * nfl + rce).mean())
    with pytest.raises(ValueError):
        active_passive_loss(x, y, active="ce")
    with pytest.raises(ValueError):
        ActivePassiveLoss("nce", "rce", log_zero=1.0)


def test_nce_is_robust_in_the_papers_sense() -> None:
    """Under symmetric noise the expected NCE is an affine function of the clean NCE (Theorem 1's core)."""
    x, y = _x(n=5, c=4)
    eta, k = 0.6, 4
    clean = normalized_cross_entropy(x, y, reduction="none")
    others = sum(normalized_cross_entropy(x, torch.full((5,), j), reduction="none") for j in range(k)) - clean
    noisy = (1 - eta) * clean + eta / (k - 1) * others
    torch.testing.assert_close(noisy, (1 - eta * k / (k - 1)) * clean + eta / (k - 1))


def test_gce_limits_and_formula() -> None:
    x, y = _x()
    p_y = F.softmax(x, -1).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(generalized_cross_entropy(x, y, q=0.7, reduction="none"), (1 - p_y ** 0.7) / 0.7)
    torch.testing.assert_close(generalized_cross_entropy(x, y, q=1.0, reduction="none"), 1 - p_y)
    torch.testing.assert_close(generalized_cross_entropy(x, y, q=0.0), F.cross_entropy(x, y))
    torch.testing.assert_close(generalized_cross_entropy(x, y, q=1e-7), F.cross_entropy(x, y), rtol=1e-5, atol=1e-6)
    # the gradient is CE's weighted by p_y^q (Zhang & Sabuncu, Eq. 7)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(generalized_cross_entropy(xr, y, q=0.7, reduction="sum"), xr)
    xc = x.clone().requires_grad_(True)
    (gce,) = torch.autograd.grad((F.cross_entropy(xc, y, reduction="none") * p_y ** 0.7).sum(), xc)
    torch.testing.assert_close(g, gce)
    assert GeneralizedCrossEntropyLoss(q=0.7).q == 0.7
    with pytest.raises(ValueError):
        generalized_cross_entropy(x, y, q=1.5)


def test_focal_matrix_gradient_is_finite_for_confident_predictions() -> None:
    x = torch.tensor([[200.0, 0.0, 0.0]], dtype=torch.float32, requires_grad=True)
    m, _ = focal_loss_matrix(x, 0.5)
    (g,) = torch.autograd.grad(m.sum(), x)
    assert torch.isfinite(g).all()
    v = normalized_focal_loss(x, torch.tensor([0]))
    (g2,) = torch.autograd.grad(v, x)
    assert torch.isfinite(v) and torch.isfinite(g2).all()


def test_gradients_flow_through_every_term() -> None:
    """Detaching the normaliser or a term changes the gradient: check the analytic NCE gradient."""
    x, y = _x(n=3, c=4)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(normalized_cross_entropy(xr, y, reduction="sum"), xr)
    logp = F.log_softmax(x, -1)
    s = logp.sum(-1, keepdim=True)
    ly = logp.gather(1, y[:, None])
    # d(ly/s)/dlogp_j = (1[j=y] s - ly) / s^2 ; dlogp_j/dx_k = 1[j=k] - p_k
    dlogp = (F.one_hot(y, 4) * s - ly) / s ** 2
    p = logp.exp()
    want = dlogp - p * dlogp.sum(-1, keepdim=True)
    torch.testing.assert_close(g, want)
    assert not math.isclose(float(g.abs().sum()), 0.0)
