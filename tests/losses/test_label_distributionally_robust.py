"""LDR-KL and ALDR-KL: the closed form of the label-DRO maximum, its limits, and the adaptive temperature."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.losses.label_distributionally_robust import (ALDRKLLoss, LDRKLLoss, aldr_kl_loss, aldr_kl_temperature,
                                                      ldr_kl_loss, ldr_margins)


# These tests compare formulas in float64 (the default dtype is restored after each).
pytestmark = pytest.mark.usefixtures("float64_default")


def _x(n: int = 6, c: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)


def test_hand_computed_value() -> None:
    # z = [1, 3, 2] (not normalised), y = 0, c = 0.5, lambda = 2: d = [0, 2.5, 1.5]
    x = torch.tensor([[1.0, 3.0, 2.0]])
    want = 2.0 * math.log((math.exp(0.0) + math.exp(1.25) + math.exp(0.75)) / 3)
    got = ldr_kl_loss(x, torch.tensor([0]), lam=2.0, margin=0.5, normalize=False)
    assert got.item() == pytest.approx(want)
    # with the authors' normalisation: z / mean|z| = z / 2
    got_n = ldr_kl_loss(x, torch.tensor([0]), lam=2.0, margin=0.5, normalize=True)
    want_n = 2.0 * math.log((1 + math.exp(1.5 / 2) + math.exp(1.0 / 2)) / 3)
    assert got_n.item() == pytest.approx(want_n)


def test_closed_form_is_the_max_over_label_distributions() -> None:
    """max_p sum_k p_k d_k - lam KL(p, u) is attained at p* = softmax(d / lam) and equals the loss."""
    x, y = _x()
    lam = 0.7
    d, k, _ = ldr_margins(x, y, 0.1, True, False)
    p = F.softmax(d / lam, -1)
    obj = lambda q: (q * d).sum(-1) - lam * (q * (q * k[:, None]).log()).sum(-1)  # noqa: E731
    loss = ldr_kl_loss(x, y, lam=lam, reduction="none")
    torch.testing.assert_close(obj(p), loss)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):  # any other distribution does no better
        q = F.softmax(torch.randn(p.shape, generator=g) * 3, -1)
        assert (obj(q) <= loss + 1e-12).all()


def test_limits_ce_hinge_and_mean() -> None:
    x, y = _x()
    k = x.shape[1]
    ce = F.cross_entropy(x, y, reduction="none")
    # c = 0, lambda = 1, raw logits: CE - log K
    torch.testing.assert_close(ldr_kl_loss(x, y, lam=1.0, margin=0.0, normalize=False, reduction="none"), ce - math.log(k))
    # temperature-scaled CE for other lambda: lam * (CE(z / lam) - log K)
    torch.testing.assert_close(ldr_kl_loss(x, y, lam=3.0, margin=0.0, normalize=False, reduction="none"),
                               3.0 * (F.cross_entropy(x / 3.0, y, reduction="none") - math.log(k)))
    d, _, _ = ldr_margins(x, y, 0.2, False, False)
    # lambda -> 0: max_k d_k (Crammer-Singer); lambda -> inf: mean_k d_k
    torch.testing.assert_close(ldr_kl_loss(x, y, lam=1e-3, margin=0.2, normalize=False, reduction="none"),
                               d.max(-1).values, atol=1e-2, rtol=0)
    torch.testing.assert_close(ldr_kl_loss(x, y, lam=1e4, margin=0.2, normalize=False, reduction="none"),
                               d.mean(-1), atol=1e-3, rtol=0)


def test_normalisation_makes_it_scale_invariant_and_softplus_option() -> None:
    x, y = _x()
    torch.testing.assert_close(ldr_kl_loss(x, y), ldr_kl_loss(7.0 * x, y))
    assert not torch.allclose(ldr_kl_loss(x, y, normalize=False), ldr_kl_loss(7.0 * x, y, normalize=False))
    sp = F.softplus(x)
    torch.testing.assert_close(ldr_kl_loss(x, y, softplus=True), ldr_kl_loss(sp, y, softplus=False))
    assert not torch.allclose(ldr_kl_loss(x, y, softplus=True), ldr_kl_loss(x, y))


def test_margin_is_added_to_non_target_classes_only() -> None:
    x, y = _x()
    d0, _, _ = ldr_margins(x, y, 0.0, True, False)
    d1, _, _ = ldr_margins(x, y, 0.3, True, False)
    onehot = F.one_hot(y, 5).bool()
    torch.testing.assert_close((d1 - d0)[onehot], torch.zeros(6))
    torch.testing.assert_close((d1 - d0)[~onehot], torch.full((24,), 0.3))


def test_aldr_temperature_is_the_closed_form_maximiser() -> None:
    x, y = _x()
    lam0, alpha = 1.5, 2.0
    d, k, _ = ldr_margins(x, y, 0.1, True, False)
    lam = aldr_kl_temperature(d, k, torch.full_like(k, lam0), lam0, alpha)
    p = F.softmax(d / lam0, -1)
    kl = (p * (p * 5).log()).sum(-1)
    torch.testing.assert_close(lam, lam0 * (1 - kl / (alpha * math.log(5))))
    assert ((lam >= lam0 * (1 - 1 / alpha)) & (lam <= lam0)).all()
    # for fixed p, lam maximises -lam KL - (alpha log K / (2 lam0)) (lam - lam0)^2
    f = lambda l: -l * kl - alpha * math.log(5) / (2 * lam0) * (l - lam0) ** 2  # noqa: E731
    assert (f(lam) >= f(lam + 1e-3)).all() and (f(lam) >= f(lam - 1e-3)).all()


def test_aldr_loss_value_and_partial_gradient() -> None:
    x, y = _x()
    lam0, alpha = 1.0, 2.0
    d, k, _ = ldr_margins(x, y, 0.1, True, False)
    lam = aldr_kl_temperature(d, k, torch.full_like(k, lam0), lam0, alpha)
    want = lam * (torch.logsumexp(d / lam[:, None], -1) - math.log(5)) - alpha * math.log(5) / (2 * lam0) * (lam - lam0) ** 2
    got, lam_got = aldr_kl_loss(x, y, lam0, alpha, reduction="none", return_lambda=True)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(lam_got, lam)
    # one step: lambda is held fixed in the gradient, i.e. the gradient is that of LDR-KL at each row's lambda
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(aldr_kl_loss(xr, y, lam0, alpha, reduction="sum"), xr)
    g_ref = torch.zeros_like(x)
    for i in range(6):
        xi = x[i : i + 1].clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(ldr_kl_loss(xi, y[i : i + 1], lam=float(lam[i]), reduction="sum"), xi)
        g_ref[i] = gi[0]
    torch.testing.assert_close(g, g_ref)


def test_aldr_keeps_per_example_temperatures() -> None:
    x, y = _x()
    m = ALDRKLLoss(lam0=1.0, alpha=2.0, num_examples=10)
    idx = torch.tensor([9, 0, 3, 4, 5, 1])
    m(x, y, idx)
    d, k, _ = ldr_margins(x, y, 0.1, True, False)
    lam1 = aldr_kl_temperature(d, k, torch.ones(6), 1.0, 2.0)
    torch.testing.assert_close(m.lambdas[idx], lam1)
    assert (m.lambdas[torch.tensor([2, 6, 7, 8])] == 1.0).all()
    # the second visit starts from the stored temperature
    loss2 = m(x, y, idx)
    lam2 = aldr_kl_temperature(d, k, lam1, 1.0, 2.0)
    torch.testing.assert_close(m.lambdas[idx], lam2)
    torch.testing.assert_close(loss2, aldr_kl_loss(x, y, 1.0, 2.0, lam_prev=lam1))
    assert not torch.allclose(lam1, lam2)
    # stateless without index: always from lambda_0
    torch.testing.assert_close(ALDRKLLoss(1.0, 2.0)(x, y), aldr_kl_loss(x, y, 1.0, 2.0))


def test_options_are_checked() -> None:
    x, y = _x()
    with pytest.raises(ValueError):
        ldr_kl_loss(x, y, lam=0.0)
    with pytest.raises(ValueError):
        aldr_kl_loss(x, y, alpha=1.0)
    with pytest.raises(ValueError):
        ALDRKLLoss(lam0=-1.0)
    assert "lam=0.5" in repr(LDRKLLoss(lam=0.5))
