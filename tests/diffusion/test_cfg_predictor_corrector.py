"""Tests for zoo.diffusion.cfg_predictor_corrector (small sizes, exact mixture scores)."""

import torch

from zoo.diffusion.analytic import GaussianMixture, wasserstein_1d
from zoo.diffusion.cfg_predictor_corrector import (
    cfg_sample,
    langevin_step,
    pcg_gamma,
    pcg_sample,
    powered_score_t,
)

GM = GaussianMixture(torch.tensor([[-1.0], [0.0], [1.5]]), stds=0.5, labels=torch.tensor([0, 0, 1]))


def _g(k: int) -> torch.Generator:
    return torch.Generator().manual_seed(k)


def test_pcg_gamma_relation():
    assert pcg_gamma(3.0) == 5.0
    assert pcg_gamma(1.0) == 1.0  # no guidance -> the corrector targets the conditional itself


def test_powered_score_is_the_tilt_of_the_noised_marginals():
    x = torch.tensor([[0.3], [-0.7]], dtype=torch.float64)
    s = powered_score_t(GM, x, 0.6, 1, 2.5)
    ref = 2.5 * GM.score_t(x, 0.6, 1) - 1.5 * GM.score_t(x, 0.6)
    torch.testing.assert_close(s, ref)


def test_langevin_step_formula():
    x = torch.zeros(4, 1, dtype=torch.float64)
    score = torch.full((4, 1), 2.0, dtype=torch.float64)
    z = torch.randn(4, 1, generator=_g(0), dtype=torch.float64)
    out = langevin_step(x, score, 0.04, _g(0))
    torch.testing.assert_close(out, 0.5 * 0.04 * score + 0.2 * z)


def test_gamma_one_cfg_samplers_and_pcg_agree_with_the_conditional():
    # gamma = 1: CFG is plain conditional sampling; every sampler should land on p(x | c).
    exact = GM.conditional(1).sample(4000, _g(1))[:, 0]
    for x in (cfg_sample(GM, 1, 1.0, 100, 4000, "ddpm", _g(2)), cfg_sample(GM, 1, 1.0, 100, 4000, "ddim", _g(3)),
              pcg_sample(GM, 1, 1.0, 100, 4000, generator=_g(4))):
        assert float(wasserstein_1d(x[:, 0], exact)) < 0.05


def test_pcg_with_2gamma_minus_1_tracks_cfg_ddpm_and_ddim_does_not():
    gamma, n, steps = 3.0, 4000, 100
    ddpm = cfg_sample(GM, 1, gamma, steps, n, "ddpm", _g(5))[:, 0]
    ddim = cfg_sample(GM, 1, gamma, steps, n, "ddim", _g(6))[:, 0]
    pcg = pcg_sample(GM, 1, pcg_gamma(gamma), steps, n, generator=_g(7))[:, 0]
    naive = pcg_sample(GM, 1, gamma, steps, n, generator=_g(8))[:, 0]  # wrong power: gamma' = gamma
    d_pcg = float(wasserstein_1d(pcg, ddpm))
    assert d_pcg < 0.04
    assert float(wasserstein_1d(ddim, ddpm)) > 0.2
    assert float(wasserstein_1d(naive, ddpm)) > d_pcg + 0.02


def test_options_honoured():
    a = pcg_sample(GM, 1, 5.0, 20, 500, langevin_steps=1, generator=_g(9))
    b = pcg_sample(GM, 1, 5.0, 20, 500, langevin_steps=3, generator=_g(9))
    c = pcg_sample(GM, 1, 5.0, 20, 500, step_scale=0.0, generator=_g(9))
    d = cfg_sample(GM, 1, 1.0, 20, 500, "ddim", _g(9))  # DDIM on the conditional = PCG without a corrector
    assert not torch.allclose(a, b)
    torch.testing.assert_close(c, d)


def test_isotropic_fast_scores_match_the_reference_mixture():
    # the fast elementwise twin against GaussianMixture.score_t (Cholesky path), 1-D and 2-D, with and without c
    from zoo.diffusion.cfg_predictor_corrector import IsotropicScores

    gm2 = GaussianMixture(torch.tensor([[-1.0, 0.5], [0.0, -1.0], [1.5, 1.0]]), stds=torch.tensor([0.3, 0.5, 0.8]),
                          weights=torch.tensor([0.2, 0.5, 0.3]), labels=torch.tensor([0, 1, 1]))
    for gm in (GM, gm2):
        fast = IsotropicScores(gm)
        x = torch.randn(64, gm.dim, generator=_g(9), dtype=torch.float64) * 2
        for abar in (0.999, 0.4, 0.01):
            for c in (None, 0, 1):
                torch.testing.assert_close(fast.score_t(x, abar, c), gm.score_t(x, abar, c))
                torch.testing.assert_close(fast.eps(x, abar, c), gm.eps(x, abar, c))


def test_isotropic_scores_refuse_a_full_covariance():
    import pytest

    from zoo.diffusion.cfg_predictor_corrector import IsotropicScores

    full = GaussianMixture(torch.zeros(1, 2), torch.tensor([[[1.0, 0.5], [0.5, 1.0]]]))
    with pytest.raises(ValueError, match="isotropic"):
        IsotropicScores(full)
