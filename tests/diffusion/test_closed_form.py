"""Closed-form diffusion models: the closed-form score is the exact score of the noised empirical
mixture, its flow lands on training points, sigma = 0 is the unsmoothed form, the smoothed score is
the Monte Carlo mean over x + sigma z, the velocity is the straight-line one, options are honoured."""

from __future__ import annotations

import math

import torch

from zoo.diffusion.closed_form import closed_form_score, sample_cfdm, smoothed_score, velocity, weighted_mean

DATA = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)


def test_weighted_mean_by_hand():
    x, t = torch.tensor([[1.0, 1.0]], dtype=torch.float64), 0.5
    # logits -|x - t x_i|^2 / (2 (1-t)^2) = -2 |x - t x_i|^2
    d2 = torch.tensor([2.0, 1.0, 1.25], dtype=torch.float64)
    w = torch.softmax(-2.0 * d2, 0)
    want = (w[:, None] * 0.5 * DATA).sum(0)
    assert torch.allclose(weighted_mean(x, t, DATA)[0], want)


def test_closed_form_score_is_the_gradient_of_the_noised_empirical_log_density():
    x = torch.tensor([[0.3, -0.2], [1.5, 2.0]], dtype=torch.float64, requires_grad=True)
    for t in (0.1, 0.5, 0.9):
        logp = torch.logsumexp(-torch.cdist(x, t * DATA).pow(2) / (2 * (1 - t) ** 2), 1).sum()
        (g,) = torch.autograd.grad(logp, x)
        assert torch.allclose(closed_form_score(x.detach(), t, DATA), g, atol=1e-10)


def test_score_lets_gradients_flow_to_the_query():
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64, requires_grad=True)
    closed_form_score(x, 0.5, DATA).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # the full Jacobian of the score is the Hessian of the log density (gradient flows through the softmax)
    t = 0.5
    x0 = torch.tensor([0.8, 0.9], dtype=torch.float64)
    logp = lambda y: torch.logsumexp(-((y[None] - t * DATA) ** 2).sum(1) / (2 * (1 - t) ** 2), 0)  # noqa: E731
    hess = torch.autograd.functional.hessian(logp, x0)
    jac = torch.autograd.functional.jacobian(lambda y: closed_form_score(y[None], t, DATA)[0], x0)
    assert torch.allclose(jac, hess, atol=1e-10)


def test_velocity_of_one_point_is_the_straight_line_to_it():
    x1 = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    x = torch.tensor([[0.5, 0.5], [-1.0, 3.0]], dtype=torch.float64)
    for t in (0.2, 0.7):
        assert torch.allclose(velocity(x, t, x1), (x1 - x) / (1 - t))


def test_unsmoothed_flow_lands_on_training_points():
    g = torch.Generator().manual_seed(0)
    x = sample_cfdm(DATA, 64, steps=400, sigma=0.0, generator=g)
    assert torch.cdist(x, DATA).min(1).values.max() < 1e-2


def test_sigma_zero_is_the_unsmoothed_form():
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(smoothed_score(x, 0.4, DATA, 0.0, m=8), closed_form_score(x, 0.4, DATA))
    x0 = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    a = sample_cfdm(DATA, 6, steps=30, sigma=0.0, m=7, x0=x0)
    b = sample_cfdm(DATA, 6, steps=30, x0=x0)
    assert torch.equal(a, b)


def test_smoothed_score_is_the_monte_carlo_mean_over_perturbed_queries():
    x, t, sigma, m = torch.tensor([[0.4, 0.9], [1.0, -1.0]], dtype=torch.float64), 0.6, 0.7, 3
    got = smoothed_score(x, t, DATA, sigma, m, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    ks = [weighted_mean(x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype), t, DATA) for _ in range(m)]
    want = (torch.stack(ks).mean(0) - x) / (1 - t) ** 2
    assert torch.allclose(got, want)
    assert not torch.allclose(got, closed_form_score(x, t, DATA))


def test_smoothing_moves_samples_off_the_training_points():
    two = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    x0 = torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    plain = sample_cfdm(two, 200, steps=200, x0=x0)
    smooth = sample_cfdm(two, 200, steps=200, sigma=1.0, m=4, x0=x0, generator=torch.Generator().manual_seed(4))
    assert torch.cdist(plain, two).min(1).values.median() < 1e-2
    assert torch.cdist(smooth, two).min(1).values.median() > 0.2
    # the smoothed flow heads for barycentres: inside the hull's x-range, near the segment
    assert smooth[:, 0].abs().max() < 1.0 + 0.1 and smooth[:, 1].abs().median() < 0.2


def test_knn_truncation():
    x = torch.tensor([[1.8, 0.2], [0.1, 2.5]], dtype=torch.float64)
    assert torch.allclose(weighted_mean(x, 0.5, DATA, knn=3), weighted_mean(x, 0.5, DATA))
    near = 0.5 * DATA[torch.cdist(x, 0.5 * DATA).argmin(1)]
    assert torch.allclose(weighted_mean(x, 0.5, DATA, knn=1), near)
    assert not torch.allclose(weighted_mean(x, 0.2, DATA, knn=2), weighted_mean(x, 0.2, DATA, knn=1))


def test_options_are_honoured():
    g = lambda: torch.Generator().manual_seed(9)  # noqa: E731
    a = sample_cfdm(DATA, 4, steps=10, sigma=0.5, m=2, generator=g())
    assert torch.equal(a, sample_cfdm(DATA, 4, steps=10, sigma=0.5, m=2, generator=g()))
    assert not torch.equal(a, sample_cfdm(DATA, 4, steps=10, sigma=0.5, m=3, generator=g()))
    assert not torch.equal(a, sample_cfdm(DATA, 4, steps=20, sigma=0.5, m=2, generator=g()))
    assert not torch.equal(a, sample_cfdm(DATA, 4, steps=10, sigma=0.5, m=2, generator=g(), knn=1))
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    # from x0 = 0 the first Euler step (t = t_min) is h * v; with t_min honoured it is finite
    b = sample_cfdm(DATA, 4, steps=1, x0=x0, t_min=0.25)
    assert torch.allclose(b, velocity(x0, 0.25, DATA))
    assert math.isfinite(float(sample_cfdm(DATA, 4, steps=1, x0=x0).abs().max()))
