"""LangevinCorrector: on a standard Gaussian target (whose exact epsilon is sqrt(1 - abar_t) x) a run
of corrector steps keeps N(0, I) (moments), pulls a shifted start towards it, and the SNR rule fixes
the step size."""

from __future__ import annotations

import pytest
import torch

from zoo.diffusion.ddpm import DDPMScheduler
from zoo.diffusion.langevin import LangevinCorrector, score_from_epsilon


def _gaussian_eps(sched):
    # p_0 = N(0, I) stays N(0, I) under the VP forward process, so score = -x, eps = sqrt(1 - abar_t) x.
    return lambda x, t: (1 - sched.alphas_cumprod[t]).sqrt().to(x.dtype) * x


def test_score_from_epsilon() -> None:
    eps = torch.randn(5, 2)
    assert torch.allclose(score_from_epsilon(eps, 0.75), -eps / 0.5)


def test_keeps_a_standard_gaussian() -> None:
    sched = DDPMScheduler(100)
    corr = LangevinCorrector(snr=0.16, n_steps=50)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 2, generator=g, dtype=torch.float64)
    y = corr.step(_gaussian_eps(sched), 50, x, sched, generator=g)
    assert y.mean(0).abs().max() < 0.05
    cov = torch.cov(y.T)
    assert torch.allclose(cov, torch.eye(2, dtype=torch.float64), atol=0.06)


def test_pulls_a_shifted_start_towards_the_target() -> None:
    sched = DDPMScheduler(100)
    corr = LangevinCorrector(snr=0.5, n_steps=100)
    g = torch.Generator().manual_seed(1)
    x = 3.0 + 0.5 * torch.randn(5000, 2, generator=g, dtype=torch.float64)
    y = corr.step(_gaussian_eps(sched), 10, x, sched, generator=g)
    assert y.mean(0).abs().max() < 0.5 and x.mean(0).abs().min() > 2.5


def test_snr_rule_step_size() -> None:
    # With score = -x and ||x|| = ||z|| on average, epsilon = 2 alpha r^2: one step maps x = 0 to sqrt(2 eps) z.
    sched = DDPMScheduler(100)
    r, t = 0.2, 30
    corr = LangevinCorrector(snr=r)
    x = torch.randn(4096, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    g1 = torch.Generator().manual_seed(3)
    y = corr.step(_gaussian_eps(sched), t, x, sched, generator=g1)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    alpha = float(1 - sched.betas[t])
    eps = 2 * alpha * (r * z.norm(dim=1).mean() / x.norm(dim=1).mean()) ** 2
    assert torch.allclose(y, x - eps * x + (2 * eps).sqrt() * z)


@pytest.mark.parametrize("kwargs", [{"snr": 0.0}, {"n_steps": 0}])
def test_invalid_arguments_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        LangevinCorrector(**kwargs)
