"""Analytic references: exact mixture scores and noised marginals, tilted targets, sample distances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from zoo.diffusion.analytic import (
    GaussianMixture,
    TiltedTarget,
    energy_distance,
    guided_eps,
    sliced_wasserstein,
    wasserstein_1d,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mix2d() -> GaussianMixture:
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.5], [0.0, 2.0]])
    a = torch.tensor([[0.6, 0.2], [0.2, 0.4]])
    covs = torch.stack([a, 0.5 * torch.eye(2), torch.tensor([[0.3, -0.1], [-0.1, 0.8]])])
    return GaussianMixture(means, covs, weights=torch.tensor([0.5, 0.3, 0.2]), labels=torch.tensor([0, 1, 1]))


def _mix1d() -> GaussianMixture:
    return GaussianMixture(
        torch.tensor([[-1.5], [1.0], [2.5]]), stds=torch.tensor([0.6, 0.5, 0.8]), labels=torch.tensor([0, 1, 1])
    )


def _autograd_score(fn, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    return g


def test_log_prob_is_the_mixture_density() -> None:
    gm = _mix2d()
    x = torch.randn(7, 2, generator=_gen(), dtype=torch.float64)
    ref = sum(
        float(gm.weights[k])
        * np.exp(stats.multivariate_normal(gm.means[k].numpy(), gm.covs[k].numpy()).logpdf(x.numpy()))
        for k in range(3)
    )
    assert np.allclose(gm.log_prob(x).numpy(), np.log(ref), atol=1e-10)


@pytest.mark.parametrize("c", [None, 1])
def test_score_is_autograd_of_log_prob(c) -> None:
    gm = _mix2d()
    x = 2 * torch.randn(16, 2, generator=_gen(1), dtype=torch.float64)
    assert torch.allclose(gm.score(x, c=c), _autograd_score(lambda z: gm.log_prob(z, c=c), x), atol=1e-10)
    xt = gm.noised(0.3)
    assert torch.allclose(gm.score_t(x, 0.3, c), _autograd_score(lambda z: xt.log_prob(z, c=c), x), atol=1e-10)


def test_noised_matches_monte_carlo_moments_of_forward_noising() -> None:
    gm, abar, n = _mix2d(), 0.4, 200_000
    x0 = gm.sample(n, _gen(2))
    xt = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * torch.randn(n, 2, generator=_gen(3), dtype=torch.float64)
    pt = gm.noised(abar)
    mean = pt.weights @ pt.means
    cen = pt.means - mean
    cov = (pt.weights[:, None, None] * (pt.covs + cen[:, :, None] * cen[:, None, :])).sum(0)
    assert torch.allclose(xt.mean(0), mean, atol=0.01)
    assert torch.allclose(torch.cov(xt.T), cov, atol=0.02)
    # The component covariances themselves: abar Sigma_k + (1 - abar) I.
    assert torch.allclose(pt.covs, abar * gm.covs + (1 - abar) * torch.eye(2, dtype=torch.float64))
    # And the exact density beats a mis-noised one on the noised samples (mean log-likelihood).
    assert pt.log_prob(xt).mean() > GaussianMixture(pt.means, abar * gm.covs).log_prob(xt).mean() + 0.1


def test_eps_is_the_posterior_mean_of_the_noise_for_a_gaussian() -> None:
    # One Gaussian N(mu, S): E[eps | x_t] = sqrt(1-a) (a S + (1-a) I)^{-1} (x_t - sqrt(a) mu).
    mu, s = torch.tensor([[1.0, -2.0]]), torch.tensor([[[0.5, 0.1], [0.1, 0.3]]])
    gm, a = GaussianMixture(mu, s), 0.6
    x = torch.randn(5, 2, generator=_gen(4), dtype=torch.float64)
    cov_t = a * s[0].double() + (1 - a) * torch.eye(2, dtype=torch.float64)
    ref = math.sqrt(1 - a) * torch.linalg.solve(cov_t, (x - math.sqrt(a) * mu.double()).T).T
    assert torch.allclose(gm.eps(x, a), ref, atol=1e-12)
    # Tweedie: E[x_0 | x_t] from eps.
    x0_ref = mu.double() + (a**0.5 * s[0].double() @ torch.linalg.solve(cov_t, (x - a**0.5 * mu.double()).T)).T
    assert torch.allclose(gm.predict_x0(x, a), x0_ref, atol=1e-12)


def test_eps_near_abar_one_is_the_scaled_clean_score() -> None:
    gm = _mix2d()
    x = gm.sample(64, _gen(5))
    for a in (1 - 1e-4, 1 - 1e-8):
        e = gm.eps(x, a)
        assert e.abs().max() < 10 * math.sqrt(1 - a) * gm.score(x).abs().max()  # eps -> 0
        assert torch.allclose(e / math.sqrt(1 - a), -gm.score(x), rtol=1e-2, atol=1e-2 * (1e4 * (1 - a)) ** 0.5)
    assert torch.equal(gm.eps(x, 1.0), torch.zeros_like(x))


def test_per_row_abar_and_class_match_scalar_calls() -> None:
    gm = _mix2d()
    x = torch.randn(4, 2, generator=_gen(6), dtype=torch.float64)
    abar, c = torch.tensor([0.9, 0.5, 0.2, 0.05]), torch.tensor([0, 1, 1, 0])
    rows = torch.cat([gm.eps(x[i : i + 1], float(abar[i]), int(c[i])) for i in range(4)])
    assert torch.allclose(gm.eps(x, abar, c), rows, atol=1e-12)


def test_conditional_mixture_restricts_to_the_class() -> None:
    gm = _mix2d()
    g1 = gm.conditional(1)
    assert g1.num_components == 2 and torch.allclose(g1.weights, torch.tensor([0.6, 0.4], dtype=torch.float64))
    x = torch.randn(9, 2, generator=_gen(7), dtype=torch.float64)
    assert torch.allclose(g1.log_prob(x), gm.log_prob(x, c=1), atol=1e-12)
    assert torch.allclose(g1.noised(0.3).score(x), gm.score_t(x, 0.3, c=1), atol=1e-12)
    # Bayes: p(x) = sum_c p(c) p(x | c).
    p0, p1 = 0.5, 0.5
    mix = torch.logsumexp(torch.stack([math.log(p0) + gm.log_prob(x, c=0), math.log(p1) + gm.log_prob(x, c=1)]), 0)
    assert torch.allclose(mix, gm.log_prob(x), atol=1e-12)
    _, comp = gm.sample(500, _gen(8), c=1, return_components=True)
    assert set(comp.tolist()) <= {1, 2}
    with pytest.raises(ValueError):
        gm.conditional(5)


def test_tilted_score_is_autograd_of_its_log_density() -> None:
    gm = _mix2d()
    for w in (0.0, 1.0, 3.0):
        tt = TiltedTarget(gm.conditional(1), gm, w)
        x = 2 * torch.randn(12, 2, generator=_gen(9), dtype=torch.float64)
        assert torch.allclose(tt.score(x), _autograd_score(tt.log_prob_unnormalized, x), atol=1e-10)
        assert torch.allclose(tt.score(x), w * gm.score(x, c=1) + (1 - w) * gm.score(x), atol=1e-12)


@pytest.mark.parametrize("w", [0.5, 2.0, 4.0])
def test_tilted_sampler_matches_the_1d_tilted_density(w: float) -> None:
    gm = _mix1d()
    tt = TiltedTarget(gm.conditional(1), gm, w)

    # The reference density from scipy's normal pdfs, independent of the code under test.
    mu, sd, pi = gm.means[:, 0].numpy(), gm.covs[:, 0, 0].sqrt().numpy(), gm.weights.numpy()

    def dens(v: float) -> float:
        comp = pi * stats.norm.pdf(v, mu, sd)
        return float(comp[1:].sum() / pi[1:].sum()) ** w * float(comp.sum()) ** (1 - w)

    z = integrate.quad(dens, -12, 14, limit=200, points=[-1.5, 1.0, 2.5])[0]
    m1 = integrate.quad(lambda v: v * dens(v), -12, 14, limit=200, points=[-1.5, 1.0, 2.5])[0] / z
    m2 = integrate.quad(lambda v: (v - m1) ** 2 * dens(v), -12, 14, limit=200, points=[-1.5, 1.0, 2.5])[0] / z
    mean, var = tt.grid_moments()
    assert abs(float(mean) - m1) < 1e-8 and abs(float(var) - m2) < 1e-6
    n = 100_000
    x = tt.sample(n, _gen(10))
    sd = math.sqrt(m2)
    assert abs(float(x.mean()) - m1) < 4 * sd / math.sqrt(n)
    assert abs(float(x.var()) / m2 - 1) < 0.03


def test_tilted_2d_sampler_matches_grid_and_importance_moments() -> None:
    gm = _mix2d()
    tt = TiltedTarget(gm.conditional(1), gm, 2.0)
    mean, cov = tt.grid_moments()
    # Independent check of the grid moments: self-normalised importance sampling from the mixture.
    q = GaussianMixture(gm.means, 4 * gm.covs, weights=gm.weights)
    xq = q.sample(400_000, _gen(11))
    lw = tt.log_prob_unnormalized(xq) - q.log_prob(xq)
    p = torch.softmax(lw, 0)
    assert torch.allclose(p @ xq, mean, atol=0.01)
    x = tt.sample(50_000, _gen(12))
    assert torch.allclose(x.mean(0), mean, atol=0.02)
    assert torch.allclose(torch.cov(x.T), cov, atol=0.03)


def test_tilt_at_w1_samples_the_conditional() -> None:
    gm = _mix1d()
    x = TiltedTarget(gm.conditional(1), gm, 1.0).sample(20_000, _gen(18))[:, 0]
    y = gm.sample(20_000, _gen(19), c=1)[:, 0]
    z = gm.sample(20_000, _gen(20), c=0)[:, 0]
    assert float(wasserstein_1d(x, y)) < 0.03 < 1.0 < float(wasserstein_1d(x, z))


def test_guided_eps_is_the_tilt_of_the_noised_marginals_not_of_the_target() -> None:
    gm, w, a = _mix1d(), 3.0, 0.3
    x = torch.linspace(-4, 5, 41, dtype=torch.float64)[:, None]
    ge = guided_eps(gm, x, a, 1, w)
    assert torch.allclose(guided_eps(gm, x, a, 1, 1.0), gm.eps(x, a, 1))
    assert torch.allclose(guided_eps(gm, x, a, 1, 0.0), gm.eps(x, a))
    tilt_t = TiltedTarget(gm.noised(a).conditional(1), gm.noised(a), w)
    assert torch.allclose(ge, -math.sqrt(1 - a) * tilt_t.score(x), atol=1e-12)
    # The exact eps of the *noised tilted target*, by quadrature of E[eps | x_t] on a grid of x_0.
    tt = TiltedTarget(gm.conditional(1), gm, w)
    x0 = torch.linspace(-8, 10, 20_001, dtype=torch.float64)[:, None]
    logp0 = tt.log_prob_unnormalized(x0)
    loglik = -((x - math.sqrt(a) * x0.T) ** 2) / (2 * (1 - a))  # (41, M)
    post = torch.softmax(logp0[None, :] + loglik, dim=1)
    eps_exact = (x[:, 0] - math.sqrt(a) * (post @ x0[:, 0])) / math.sqrt(1 - a)
    assert (ge[:, 0] - eps_exact).abs().max() > 0.05  # they differ at intermediate noise
    # ... and agree as abar -> 1 (relative to eps's own scale).
    a1 = 1 - 1e-6
    loglik1 = -((x - math.sqrt(a1) * x0.T) ** 2) / (2 * (1 - a1))
    post1 = torch.softmax(logp0[None, :] + loglik1, dim=1)
    eps1 = (x[:, 0] - math.sqrt(a1) * (post1 @ x0[:, 0])) / math.sqrt(1 - a1)
    inner = (x[:, 0] > -2.5) & (x[:, 0] < 4)
    assert torch.allclose(guided_eps(gm, x, a1, 1, w)[inner, 0], eps1[inner], atol=0.02 * math.sqrt(1 - a1) * 100)


def test_distances_vanish_on_identical_samples() -> None:
    x = torch.randn(300, 2, generator=_gen(13), dtype=torch.float64)
    assert float(wasserstein_1d(x[:, 0], x[:, 0])) == 0.0
    assert float(energy_distance(x, x)) < 1e-6
    assert float(sliced_wasserstein(x, x)) == 0.0
    assert float(wasserstein_1d(x[:, 0], x[torch.randperm(300, generator=_gen(0)), 0])) == 0.0


@pytest.mark.parametrize("m", [200, 333])
def test_distances_match_scipy_in_1d(m: int) -> None:
    x = torch.randn(200, generator=_gen(14), dtype=torch.float64)
    y = 0.5 + 1.3 * torch.randn(m, generator=_gen(15), dtype=torch.float64)
    assert math.isclose(float(wasserstein_1d(x, y)), stats.wasserstein_distance(x.numpy(), y.numpy()), rel_tol=1e-10)
    assert math.isclose(float(energy_distance(x, y)), stats.energy_distance(x.numpy(), y.numpy()), rel_tol=1e-8)
    if m == 200:
        assert torch.isclose(wasserstein_1d(x, y), (x.sort().values - y.sort().values).abs().mean())


def test_sliced_wasserstein_sees_a_shift_and_is_rotation_invariant() -> None:
    x = torch.randn(2000, 2, generator=_gen(16), dtype=torch.float64)
    y = torch.randn(2000, 2, generator=_gen(17), dtype=torch.float64)
    shift = torch.tensor([1.0, 0.0], dtype=torch.float64)
    # A pure shift by s has sliced W1 = |s| E|cos theta| = 2|s|/pi, up to the O(h^2) angle quadrature.
    assert abs(float(sliced_wasserstein(x, x + shift, 256)) - 2 / math.pi) < 1e-4
    assert float(sliced_wasserstein(x, y)) < 0.1
    r = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    rotated = float(sliced_wasserstein(x @ r.T, y @ r.T, 256))
    assert math.isclose(rotated, float(sliced_wasserstein(x, y, 256)), rel_tol=0.02)
    # Batched 1-D W1: one distance per leading row.
    assert wasserstein_1d(x.T, y.T).shape == (2,)


def test_guided_eps_matches_ho_salimans_with_w_minus_one() -> None:
    from zoo.diffusion import guided_epsilon

    gm, a, w = _mix2d(), 0.5, 3.0
    x = torch.randn(8, 2, generator=_gen(21), dtype=torch.float64)
    ref = guided_epsilon(gm.eps(x, a, 1), gm.eps(x, a), w - 1)
    assert torch.allclose(guided_eps(gm, x, a, 1, w), ref, atol=1e-12)
