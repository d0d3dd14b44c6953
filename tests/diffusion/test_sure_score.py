"""SURE-Score: SURE is an unbiased estimate of the denoiser's MSE (Gaussian example, many samples),
the Monte-Carlo divergence is exact in expectation (and exact for linear maps up to b's sampling),
DSM is minimised by the true score, and the Langevin posterior sampler matches a Gaussian posterior."""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.diffusion.sure_score import (
    NoiseConditionalScore,
    annealed_langevin_posterior,
    divergence_mc,
    dsm_loss,
    geometric_sigmas,
    sure,
    sure_score_loss,
    tweedie_denoiser,
)

D = torch.float64


def _gaussian_problem(n: int, d: int = 3, s: float = 1.0, sigma_w: float = 0.7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = s * torch.randn(n, d, generator=g, dtype=D)
    return x, x + sigma_w * torch.randn(n, d, generator=g, dtype=D), g


def test_sure_is_unbiased_for_the_mse_of_linear_and_nonlinear_denoisers():
    """x ~ N(0, I), y = x + 0.7 n: mean SURE equals the true MSE for shrinkage and a soft-threshold."""
    sigma_w = 0.7
    x, y, g = _gaussian_problem(400000, sigma_w=sigma_w)
    for f in (lambda v: 0.5 * v, lambda v: v / (1 + sigma_w ** 2), lambda v: torch.sign(v) * (v.abs() - 0.3).clamp_min(0),
              lambda v: torch.tanh(v)):
        true = float((f(y) - x).pow(2).sum(1).mean())
        est = float(sure(f, y, sigma_w, eps=1e-4, generator=g).mean())
        assert abs(est - true) < 0.02 * true + 0.01, (est, true)
    # the naive residual ||y - f(y)||^2 alone is biased (it rewards the identity)
    ident = float(sure(lambda v: v, y, sigma_w, generator=g).mean())
    assert abs(ident - 3 * sigma_w ** 2) < 0.02


def test_sure_picks_the_mmse_shrinkage():
    """Over shrinkages c y, SURE's argmin is the MMSE factor 1/(1 + sigma_w^2) without seeing x."""
    sigma_w = 0.7
    _, y, g = _gaussian_problem(200000, sigma_w=sigma_w)
    cs = torch.linspace(0.3, 1.0, 71)
    vals = torch.stack([sure(lambda v, c=float(c): c * v, y, sigma_w, generator=g).mean() for c in cs])
    assert abs(float(cs[vals.argmin()]) - 1 / (1 + sigma_w ** 2)) < 0.015


def test_divergence_estimator():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(4, 4, generator=g, dtype=D)
    y = torch.randn(50000, 4, generator=g, dtype=D)
    est = divergence_mc(lambda v: v @ M.T, y, 1e-3, g)
    se = float(est.std()) / math.sqrt(len(est))
    assert abs(float(est.mean()) - float(torch.trace(M))) < 4 * se  # unbiased: E[b^T M b] = tr M
    # a nonlinear map: f = tanh, div = sum(1 - tanh^2)
    est = divergence_mc(torch.tanh, y, 1e-4, g)
    exact = (1 - torch.tanh(y) ** 2).sum(1)
    assert abs(float(est.mean() - exact.mean())) < 0.03


def test_tweedie_denoiser_and_sure_score_loss_terms():
    torch.manual_seed(0)
    net = NoiseConditionalScore(2, hidden=8, depth=1).double()
    y = torch.randn(64, 2, dtype=D)
    h = tweedie_denoiser(net, 0.5)
    torch.testing.assert_close(h(y), y + 0.25 * net(y, 0.5))
    sig = geometric_sigmas(1.0, 0.1, 4).double()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    full = sure_score_loss(net, y, 0.5, sig, lam=0.0, generator=g1)
    torch.testing.assert_close(full, sure(h, y, 0.5, generator=g2).mean() / 2)  # lam = 0: SURE alone, per coordinate
    # lam weights the DSM term on the denoised samples
    a = sure_score_loss(net, y, 0.5, sig, lam=1.0, generator=torch.Generator().manual_seed(3))
    b = sure_score_loss(net, y, 0.5, sig, lam=2.0, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(a, b)
    # the DSM term is taken on the Tweedie-denoised samples h(y), not on the noisy y
    g3 = torch.Generator().manual_seed(3)
    torch.randn(y.shape, generator=g3, dtype=D)  # the divergence probe drawn first
    dsm_on_denoised = dsm_loss(net, h(y).detach(), sig, g3)
    torch.testing.assert_close(a - sure_score_loss(net, y, 0.5, sig, lam=0.0, generator=torch.Generator().manual_seed(3)),
                               dsm_on_denoised)


class _Exact(nn.Module):
    """The exact score of N(0, s^2 I) noised by sigma, times a factor."""

    def __init__(self, s: float, factor: float = 1.0) -> None:
        super().__init__()
        self.s, self.factor = s, factor

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        sig = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1)
        return -self.factor * x / (self.s ** 2 + sig ** 2)


def test_dsm_is_minimised_by_the_true_score():
    x = 0.8 * torch.randn(200000, 2, generator=torch.Generator().manual_seed(0), dtype=D)
    sig = geometric_sigmas(1.0, 0.1, 5).double()
    losses = [float(dsm_loss(_Exact(0.8, f), x, sig, torch.Generator().manual_seed(1))) for f in (0.8, 1.0, 1.2)]
    assert losses[1] < losses[0] and losses[1] < losses[2]


def test_langevin_posterior_matches_a_gaussian_posterior():
    """Prior N(0, I) in 2-D, one measurement a^T x + w: the sample mean/variance along a match the closed form."""
    n = 4000
    g = torch.Generator().manual_seed(0)
    A = torch.tensor([[1.0, 0.0]], dtype=D)
    x = torch.randn(n, 2, generator=g, dtype=D)
    s = 0.3
    meas = x[:, :1] + s * torch.randn(n, 1, generator=g, dtype=D)
    out = annealed_langevin_posterior(_Exact(1.0), A, meas, s, geometric_sigmas(1.0, 0.01, 10).double(), 50, 0.5, g)
    post_mean = meas[:, 0] / (1 + s ** 2)
    post_var = s ** 2 / (1 + s ** 2)
    r = out[:, 0] - post_mean
    assert abs(float(r.mean())) < 0.02 and abs(float(r.var()) - post_var) < 0.1 * post_var
    assert abs(float(out[:, 1].var()) - 1.0) < 0.1  # the unmeasured coordinate keeps the prior
