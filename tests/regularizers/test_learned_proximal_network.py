"""Learned proximal networks: psi is convex, f = grad psi is a gradient (symmetric PSD Jacobian), the
recovered regulariser is exact for a known psi, the proximal-matching loss and its gamma schedule,
and a short proximal-matching run recovers soft-thresholding (the MAP denoiser) on Laplacian data
where the squared loss does not."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.regularizers.learned_proximal_network import (
    LearnedProximalNetwork,
    ProximalMatchingLoss,
    invert,
    pointwise_loss,
    proximal_matching_loss,
    regularizer,
    soft_threshold,
)


def _scrambled(dim: int = 2, seed: int = 0) -> LearnedProximalNetwork:
    """An LPN whose weights were pushed far negative, then projected (as after an optimiser step)."""
    torch.manual_seed(seed)
    m = LearnedProximalNetwork(dim, hidden=16, layers=2, beta=3.0)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(2.0 * torch.randn_like(p) - 1.0)
    m.project()
    return m


def test_projection_makes_hidden_weights_nonnegative_and_leaves_input_weights_free():
    m = _scrambled()
    for w in m.constrained():
        assert (w >= 0).all()
        assert (w > 0).any()
    assert (m.lin[0].weight < 0).any()  # the input layer H_1 is not constrained
    assert all((r.weight < 0).any() for r in m.res)


def test_psi_is_convex_along_random_chords():
    m = _scrambled()
    g = torch.Generator().manual_seed(1)
    a, b = 3 * torch.randn(2000, 2, generator=g), 3 * torch.randn(2000, 2, generator=g)
    t = torch.rand(2000, 1, generator=g)
    with torch.no_grad():
        lhs = m.scalar(t * a + (1 - t) * b)
        rhs = t.squeeze(1) * m.scalar(a) + (1 - t.squeeze(1)) * m.scalar(b)
    assert (lhs <= rhs + 1e-4).all()


def test_unprojected_weights_break_convexity():
    """The projection is what makes psi convex: the same net without it is not."""
    torch.manual_seed(0)
    m = LearnedProximalNetwork(2, hidden=16, layers=2, beta=3.0)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(2.0 * torch.randn_like(p) - 1.0)
    g = torch.Generator().manual_seed(1)
    a, b = 3 * torch.randn(2000, 2, generator=g), 3 * torch.randn(2000, 2, generator=g)
    with torch.no_grad():
        gap = m.scalar(0.5 * (a + b)) - 0.5 * (m.scalar(a) + m.scalar(b))
    assert (gap > 1e-3).any()


def test_f_is_the_gradient_of_psi_with_symmetric_psd_jacobian():
    m = _scrambled().double()
    y = torch.randn(5, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    f = m(y).detach()
    # f = grad psi, by central differences
    h = 1e-5
    for k in range(2):
        e = torch.zeros(2)
        e[k] = h
        with torch.no_grad():
            fd = (m.scalar(y + e) - m.scalar(y - e)) / (2 * h)
        assert torch.allclose(f[:, k], fd, rtol=1e-6, atol=1e-6)
    for yi in y:
        jac = torch.autograd.functional.jacobian(lambda v: m(v.unsqueeze(0)).squeeze(0), yi)
        assert torch.allclose(jac, jac.T, rtol=1e-9, atol=1e-9)
        assert torch.linalg.eigvalsh(0.5 * (jac + jac.T)).min() > -1e-9  # PSD: psi convex, f monotone


def test_f_is_differentiable_in_the_parameters():
    m = _scrambled()
    y = torch.randn(8, 2)
    m(y).pow(2).sum().backward()
    assert m.lin[1].weight.grad is not None and m.lin[1].weight.grad.abs().sum() > 0


def _quadratic_lpn(alpha: float) -> LearnedProximalNetwork:
    """psi(y) = alpha/2 |y|^2 exactly: every ICNN weight and bias zero."""
    m = LearnedProximalNetwork(2, hidden=8, layers=1, alpha=alpha)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.lin[-1].weight.zero_()
    return m


def test_regularizer_is_exact_for_a_known_psi():
    """psi = a/2 |y|^2 gives f(y) = a y, the prox of R(x) = (1/a - 1)/2 |x|^2 (+ the constant psi contributes)."""
    a = 0.5
    m = _quadratic_lpn(a)
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(3))
    y = invert(m, x, steps=2000, lr=0.05)
    assert torch.allclose(m(y).detach(), x, atol=1e-3)
    r = regularizer(m, x, y=y)
    const = float(m.scalar(torch.zeros(1, 2)).detach())  # psi(0) (= 0 here, softplus(0) terms zeroed)
    expected = 0.5 * (1 / a - 1) * x.pow(2).sum(1) - const
    assert torch.allclose(r, expected, atol=1e-3)
    # and f really is the prox of R: argmin_x 1/2 |y - x|^2 + R(x) = a y
    yq = torch.tensor([[1.0, -2.0]])
    xs = torch.stack(torch.meshgrid(torch.linspace(-2, 2, 401), torch.linspace(-2, 2, 401), indexing="ij"), -1).reshape(-1, 2)
    obj = 0.5 * (yq - xs).pow(2).sum(1) + 0.5 * (1 / a - 1) * xs.pow(2).sum(1)
    assert torch.allclose(xs[obj.argmin()], a * yq[0], atol=0.011)


def test_soft_threshold_is_the_prox_of_lambda_abs():
    lam = 0.7
    xs = torch.linspace(-5, 5, 100001)
    for y in [-3.0, -0.5, 0.0, 0.3, 0.7, 2.2]:
        best = xs[(0.5 * (y - xs) ** 2 + lam * xs.abs()).argmin()]
        assert float(soft_threshold(torch.tensor(y), lam)) == pytest.approx(float(best), abs=2e-4)


def test_proximal_matching_loss_limits():
    d = torch.tensor([[0.0], [0.3], [1.0], [5.0]])
    zero = torch.zeros_like(d)
    # zero at a perfect prediction, bounded by 1, saturates for far points
    assert float(proximal_matching_loss(zero, zero, 0.5)) == 0.0
    per = [float(proximal_matching_loss(d[i:i + 1], zero[i:i + 1], 0.5)) for i in range(4)]
    assert per == sorted(per) and per[-1] == pytest.approx(1.0, abs=1e-9) and per[-1] <= 1.0
    # gamma -> infinity: gamma^2 * l_PM -> the squared loss
    big = 1e3
    assert big**2 * float(proximal_matching_loss(d, zero, big)) == pytest.approx(float(pointwise_loss(d, zero, "l2")), rel=1e-3)
    # the exponent uses the squared Euclidean norm of the whole vector
    v = torch.tensor([[0.3, 0.4]])
    assert float(proximal_matching_loss(v, torch.zeros_like(v), 1.0)) == pytest.approx(1 - math.exp(-0.25))


def test_gamma_schedule_decreases_after_the_warmup():
    m = LearnedProximalNetwork(1, 4, 1)
    loss = ProximalMatchingLoss(m, [0.5, 0.4, 0.3, 0.2, 0.1], warmup=0.2)
    total = 100
    stages = [loss.stage(s, total) for s in range(total)]
    assert stages[:20] == [None] * 20  # l1 warm-up
    assert stages[20] == 0.5 and stages[-1] == 0.1
    seen = [g for g in stages[20:]]
    assert seen == sorted(seen, reverse=True) and sorted(set(seen)) == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert [seen.count(g) for g in (0.5, 0.4, 0.3, 0.2, 0.1)] == [16] * 5
    no_warm = ProximalMatchingLoss(m, [0.3], warmup=0.0)
    assert no_warm.stage(0, total) == 0.3
    with pytest.raises(ValueError):
        ProximalMatchingLoss(m, [0.0])


def test_pm_loss_uses_the_schedule_and_projects():
    m = _scrambled(dim=1)
    with torch.no_grad():
        m.lin[1].weight.fill_(-1.0)
    loss = ProximalMatchingLoss(m, [0.5, 0.1], warmup=0.5)
    y, x = torch.randn(64, 1), torch.randn(64, 1)
    loss.before_step(0, 10)
    assert (m.lin[1].weight >= 0).all()
    assert float(loss(m, y, x)) == pytest.approx(float(pointwise_loss(m(y), x, "l1")))
    loss.before_step(9, 10)
    assert loss.gamma == 0.1
    assert float(loss(m, y, x)) == pytest.approx(float(proximal_matching_loss(m(y), x, 0.1)))
