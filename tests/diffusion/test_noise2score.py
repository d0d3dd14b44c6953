"""Noise2Score: Tweedie's formula per noise model is exact on analytic priors, the AR-DAE loss is
minimised by the (smoothed) score, and the noise models have the stated moments."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zoo.diffusion.analytic import GaussianMixture
from zoo.diffusion.noise2score import (
    GammaNoise,
    GaussianNoise,
    PoissonNoise,
    ScoreNet,
    annealed_sigma,
    ardae_loss,
    noise_model,
    psnr,
)

D = torch.float64


def _posterior_mean_gmm(gm: GaussianMixture, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """E[x | y] for x ~ GMM, y = x + sigma n, by Bayes (no score involved)."""
    eye = torch.eye(gm.dim, dtype=D)
    noisy = GaussianMixture(gm.means, gm.covs + sigma ** 2 * eye, weights=gm.weights)
    comps = [GaussianMixture(gm.means[k:k + 1], gm.covs[k:k + 1] + sigma ** 2 * eye) for k in range(gm.num_components)]
    logr = torch.stack([c.log_prob(y) + gm.weights[k].log() for k, c in enumerate(comps)], 1)
    r = torch.softmax(logr - noisy.log_prob(y)[:, None], 1)
    out = torch.zeros_like(y)
    for k in range(gm.num_components):
        gain = gm.covs[k] @ torch.linalg.inv(gm.covs[k] + sigma ** 2 * eye)
        out += r[:, k:k + 1] * (gm.means[k] + (y - gm.means[k]) @ gain.T)
    return out


def test_gaussian_tweedie_is_the_posterior_mean_of_a_mixture():
    covs = torch.stack([torch.tensor([[0.3, 0.1], [0.1, 0.2]]), torch.tensor([[0.1, 0.0], [0.0, 0.4]]),
                        0.05 * torch.eye(2)]).to(D)
    gm = GaussianMixture(torch.tensor([[-1.5, 0.0], [1.0, 1.0], [0.5, -1.5]]), covs, weights=torch.tensor([0.5, 0.3, 0.2]))
    sigma = 0.7
    g = torch.Generator().manual_seed(0)
    y = GaussianNoise(sigma).corrupt(gm.sample(500, g), g).to(D)
    score = GaussianMixture(gm.means, gm.covs + sigma ** 2 * torch.eye(2, dtype=D), weights=gm.weights).score(y)
    x_hat = GaussianNoise(sigma).tweedie(y, score)
    torch.testing.assert_close(x_hat, _posterior_mean_gmm(gm, y, sigma), rtol=1e-9, atol=1e-9)


def test_gaussian_tweedie_beats_identity_and_wrong_scale():
    """The posterior mean has lower MSE than y and than a mis-scaled Tweedie step (Monte Carlo)."""
    gm = GaussianMixture(torch.tensor([[-1.0], [1.5]]), stds=torch.tensor([0.3, 0.5]))
    g = torch.Generator().manual_seed(1)
    x = gm.sample(20000, g)
    y = x + 0.6 * torch.randn(x.shape, generator=g, dtype=D)
    s = GaussianMixture(gm.means, gm.covs + 0.36, weights=gm.weights).score(y)
    mse = lambda xh: float((xh - x).pow(2).mean())  # noqa: E731
    best = mse(GaussianNoise(0.6).tweedie(y, s))
    assert best < mse(y) and best < mse(y + 0.5 * 0.36 * s) and best < mse(y + 1.5 * 0.36 * s)


@pytest.mark.parametrize("zeta", [1.0, 0.1])
def test_poisson_tweedie_with_digamma_is_exact_under_a_gamma_prior(zeta):
    """lambda = x / zeta ~ Gamma(a, rate b), n ~ Poisson(lambda): E[log lambda | n] = psi(n + a) - log(b + 1)."""
    a, b = 3.0, 0.5
    n = torch.arange(0, 40, dtype=D)
    # score of the (continued) negative-binomial count density, in count units, then pixel units
    score_n = torch.special.digamma(n + a) - torch.special.digamma(n + 1) - math.log(b + 1)
    y, score_y = zeta * n, score_n / zeta
    exact = zeta * torch.exp(torch.special.digamma(n + a) - math.log(b + 1))
    torch.testing.assert_close(PoissonNoise(zeta, exact_digamma=True).tweedie(y, score_y), exact)
    # the paper's form replaces psi(n + 1) by log(n + 1/2): close once counts are not tiny
    paper = PoissonNoise(zeta).tweedie(y, score_y)
    torch.testing.assert_close(paper, (y + zeta / 2) * torch.exp(zeta * score_y))
    rel = (paper / exact - 1).abs()
    assert float(rel[3:].max()) < 5e-3 and float(rel[0]) < 0.12  # n = 0: 0.5 exp(-psi(1)) = 0.89


def test_gamma_tweedie_is_exact_under_a_gamma_prior_on_the_rate():
    """r = k / x ~ Gamma(a, rate b), y | r ~ Gamma(k, rate r): E[r | y] = (a + k) / (b + y) and x_hat = k / E[r | y]."""
    a, b, k = 4.0, 2.0, 10.0
    y = torch.linspace(0.05, 3.0, 50, dtype=D)
    score = (k - 1) / y - (a + k) / (b + y)  # d/dy log of the marginal y^(k-1) (b + y)^-(a+k)
    torch.testing.assert_close(GammaNoise(k).tweedie(y, score), k * (b + y) / (a + k))


@pytest.mark.parametrize("model,var", [(GaussianNoise(0.2), lambda x: 0.04 + 0 * x),
                                       (PoissonNoise(0.1), lambda x: 0.1 * x),
                                       (GammaNoise(10.0), lambda x: x ** 2 / 10)])
def test_noise_models_are_unbiased_with_the_stated_variance(model, var):
    x = torch.tensor([0.2, 0.5, 0.9]).repeat(40000, 1)
    y = model.corrupt(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(y.mean(0), x[0], atol=4e-3, rtol=0)
    torch.testing.assert_close(y.var(0), var(x[0]), rtol=0.05, atol=1e-4)
    y2 = model.corrupt(x, torch.Generator().manual_seed(0))
    assert torch.equal(y, y2)  # the generator alone decides the noise


class _Linear(nn.Module):
    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, y: torch.Tensor, sigma_a: float) -> torch.Tensor:
        return self.c * y


def test_ardae_loss_is_minimised_by_the_smoothed_score():
    """y ~ N(0, s^2): E||u + sigma_a c (y + sigma_a u)||^2 is minimal at c = -1/(s^2 + sigma_a^2)."""
    s, sa = 0.8, 0.3
    g = torch.Generator().manual_seed(0)
    y = s * torch.randn(400000, 1, generator=g, dtype=D)
    c_star = -1.0 / (s ** 2 + sa ** 2)
    cs = torch.linspace(-3.0, 1.0, 81, dtype=D)
    losses = torch.stack([ardae_loss(_Linear(float(c)), y, sa, torch.Generator().manual_seed(1)) for c in cs])
    assert abs(float(cs[losses.argmin()]) - c_star) < 0.06
    # and its value there is the closed form 1 + 2 sa^2 c + sa^2 c^2 (s^2 + sa^2)
    closed = 1 + 2 * sa ** 2 * c_star + sa ** 2 * c_star ** 2 * (s ** 2 + sa ** 2)
    got = float(ardae_loss(_Linear(c_star), y, sa, torch.Generator().manual_seed(1)))
    assert abs(got - closed) < 5e-3


def test_annealed_sigma_endpoints_and_monotone():
    vals = [annealed_sigma(i, 100, 1.0, 0.2, anneal_frac=0.5) for i in range(100)]
    assert vals[0] == pytest.approx(1.0 - 0.8 / 50) and vals[49] == pytest.approx(0.2) and vals[-1] == pytest.approx(0.2)
    assert all(a >= b for a, b in zip(vals, vals[1:]))


def test_score_net_residual_and_sigma_input():
    torch.manual_seed(0)
    net = ScoreNet(6, hidden=8, residual=True)
    y = torch.randn(4, 6)
    torch.testing.assert_close(net(y, 0.0), y + net.net(torch.cat([y, torch.zeros(4, 1)], 1)))
    assert not torch.allclose(net(y, 0.0), net(y, 1.0))  # sigma_a reaches the network


def test_noise_model_factory_and_psnr():
    assert isinstance(noise_model("gamma", 10), GammaNoise) and noise_model("poisson", 0.1).zeta == 0.1
    with pytest.raises(ValueError):
        noise_model("speckle", 1.0)
    x = torch.zeros(2, 4)
    assert float(psnr(x + 0.1, x)[0]) == pytest.approx(20.0)
