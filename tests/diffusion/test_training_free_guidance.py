"""TFG (Ye et al. 2024): the unified step and its special cases.

Closed forms on a LINEAR denoiser eps(x) = A x and a linear predictor f(x0) = a . x0 pin each term:
mean guidance is rho grad_{x_t} f(x0_hat(x_t)) = rho (I - sqrt(1 - abar) A)^T a / sqrt(abar) (the gradient
goes THROUGH the denoiser), divided by sqrt(alpha_t); variance guidance adds sqrt(abar_s) mu N_iter a;
all-zero strengths are the plain sampler (DDPM and DDIM); the implicit dynamics is the Gaussian-smoothed
predictor log E exp f(x + gamma_t d), whose closed form for linear f is f(x) + gamma_t^2 |a|^2 / 2.
"""

from __future__ import annotations

import math

import pytest
import torch

from zoo.diffusion.ddim import DDIMScheduler
from zoo.diffusion.ddpm import DDPMScheduler
from zoo.diffusion.guidance import sample
from zoo.diffusion.training_free_guidance import (
    SPECIAL_CASES,
    TFGConfig,
    smoothed_log_prob,
    step_weights,
    tfg_sample,
    tfg_step,
)

D = 3
torch.manual_seed(0)
A = 0.3 * torch.randn(D, D, dtype=torch.float64)
a = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


def eps_fn(x, t):
    return x @ A.T


def log_prob(x0):
    return x0 @ a


def _sched(kind):
    s = DDPMScheduler(100, beta_schedule="cosine") if kind == "ddpm" else DDIMScheduler(100, eta=0.0, beta_schedule="cosine")
    s.set_timesteps(10)
    return s


def _coeffs(s, t):
    u = s.previous_timestep(t)
    abar, abar_s = s.alphas_cumprod[t], s.alphas_cumprod[u]
    return float(abar), float(abar_s), float(abar / abar_s)


@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
def test_zero_strengths_are_the_plain_sampler(kind):
    x = torch.randn(5, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    plain = sample(_sched(kind), eps_fn, x.clone(), progress=False, generator=torch.Generator().manual_seed(2))
    for cfg in (TFGConfig(), TFGConfig(n_iter=3, gamma=0.5)):
        out = tfg_sample(_sched(kind), eps_fn, log_prob, x.clone(), cfg, torch.Generator().manual_seed(2),
                         torch.Generator().manual_seed(3))
        torch.testing.assert_close(out, plain)


@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
def test_mean_guidance_goes_through_the_denoiser(kind):
    s = _sched(kind)
    t = int(s.timesteps[3])
    abar, _, alpha = _coeffs(s, t)
    x = torch.randn(4, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    rho = 0.7
    base = s.step(eps_fn(x, t), t, x, generator=torch.Generator().manual_seed(5)).prev_sample
    out = tfg_step(s, eps_fn, log_prob, x, t, TFGConfig(rho=1.0), rho, 0.0, torch.Generator().manual_seed(5), None)
    grad = (torch.eye(D, dtype=torch.float64) - math.sqrt(1 - abar) * A).T @ a / math.sqrt(abar)
    torch.testing.assert_close(out, base + rho * grad / math.sqrt(alpha))


@pytest.mark.parametrize("n_iter", [1, 2])
def test_variance_guidance_moves_x0_hat(n_iter):
    s = _sched("ddpm")
    t = int(s.timesteps[4])
    _, abar_s, _ = _coeffs(s, t)
    x = torch.randn(4, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mu = 0.3
    base = s.step(eps_fn(x, t), t, x, generator=torch.Generator().manual_seed(5)).prev_sample
    out = tfg_step(s, eps_fn, log_prob, x, t, TFGConfig(mu=1.0, n_iter=n_iter), 0.0, mu,
                   torch.Generator().manual_seed(5), None)
    torch.testing.assert_close(out, base + math.sqrt(abar_s) * mu * n_iter * a)


def test_smoothed_predictor():
    x0 = torch.randn(6, D, dtype=torch.float64)
    torch.testing.assert_close(smoothed_log_prob(log_prob, x0, 0.0, 8, None), log_prob(x0))
    d = torch.randn((1, 6, D), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    one = smoothed_log_prob(log_prob, x0, 0.5, 1, torch.Generator().manual_seed(4))
    torch.testing.assert_close(one, log_prob(x0 + 0.5 * d[0]))
    many = smoothed_log_prob(log_prob, x0, 0.3, 20_000, torch.Generator().manual_seed(0))
    exact = log_prob(x0) + 0.3**2 * float(a @ a) / 2  # log E exp(a.(x + s d)) = a.x + s^2 |a|^2 / 2
    torch.testing.assert_close(many, exact, atol=0.05, rtol=0)


def test_recurrence_renoises_and_uses_only_the_guide_generator():
    s = _sched("ddpm")
    t = int(s.timesteps[2])
    x = torch.randn(4, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    g1 = torch.Generator().manual_seed(7)
    one = tfg_step(s, eps_fn, log_prob, x, t, TFGConfig(), 0.0, 0.0, torch.Generator().manual_seed(5), g1)
    assert torch.equal(g1.get_state(), torch.Generator().manual_seed(7).get_state())  # N_recur=1: untouched
    two = tfg_step(s, eps_fn, log_prob, x, t, TFGConfig(n_recur=2), 0.0, 0.0, torch.Generator().manual_seed(5),
                   torch.Generator().manual_seed(7))
    assert (two - one).abs().max() > 1e-3


def test_step_weights_and_special_cases():
    s = _sched("ddpm")
    abar = s.alphas_cumprod[s.timesteps]
    for kind in ("constant", "increase", "decrease"):
        w = step_weights(abar, kind)
        assert abs(float(w.mean()) - 1) < 1e-12
    prev = torch.cat([abar[1:], abar.new_ones(1)]).double()
    alpha = abar.double() / prev
    torch.testing.assert_close(step_weights(abar, "increase"), alpha / alpha.mean())
    torch.testing.assert_close(step_weights(abar, "decrease"), (1 - alpha) / (1 - alpha).mean())
    sc = SPECIAL_CASES
    assert (sc["dps"].mu, sc["dps"].gamma, sc["dps"].n_recur, sc["dps"].n_iter) == (0, 0, 1, 0)
    assert sc["lgd"].gamma > 0 and sc["lgd"].mu == 0
    assert sc["freedom"].n_recur > 1 and sc["freedom"].mu == 0 and sc["freedom"].gamma == 0
    assert sc["mpgd"].rho == 0 and sc["mpgd"].n_iter >= 1 and sc["mpgd"].n_recur == 1
    assert sc["ugd"].rho > 0 and sc["ugd"].mu > 0 and sc["ugd"].gamma == 0 and sc["ugd"].n_recur > 1
    t = sc["tfg"]
    assert t.rho > 0 and t.mu > 0 and t.gamma > 0
    with pytest.raises(ValueError):
        TFGConfig(rho=-1.0)
    with pytest.raises(ValueError):
        TFGConfig(n_recur=0)


@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
def test_guidance_raises_the_target(kind):
    # data N(0, I): the exact denoiser is eps(x_t) = sqrt(1 - abar_t) x_t
    abar = _sched(kind).alphas_cumprod.double()

    def eps_fn(x, t):
        return (1 - abar[t]).sqrt() * x

    x = torch.randn(64, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    plain = tfg_sample(_sched(kind), eps_fn, log_prob, x.clone(), TFGConfig(), torch.Generator().manual_seed(2))
    for name in ("dps", "mpgd", "ugd", "tfg"):
        cfg = SPECIAL_CASES[name].with_(rho=0.05 if SPECIAL_CASES[name].rho else 0.0,
                                        mu=0.05 if SPECIAL_CASES[name].mu else 0.0)
        out = tfg_sample(_sched(kind), eps_fn, log_prob, x.clone(), cfg, torch.Generator().manual_seed(2),
                         torch.Generator().manual_seed(3))
        assert float(log_prob(out).mean()) > float(log_prob(plain).mean()) + 0.1, name


def test_variance_iterations_climb_from_the_moved_x0():
    # f(x0) = -|x0 - m|^2 / 2: Delta_0 after two steps is mu (2 - mu) (m - x0_hat), not 2 mu (m - x0_hat)
    m = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)

    def quad(x0):
        return -0.5 * ((x0 - m) ** 2).sum(1)

    s = _sched("ddpm")
    t = int(s.timesteps[4])
    _, abar_s, _ = _coeffs(s, t)
    x = torch.randn(4, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mu = 0.3
    step = s.step(eps_fn(x, t), t, x, generator=torch.Generator().manual_seed(5))
    out = tfg_step(s, eps_fn, quad, x, t, TFGConfig(mu=1.0, n_iter=2), 0.0, mu, torch.Generator().manual_seed(5), None)
    x0 = step.pred_original_sample  # no clipping in this scheduler
    torch.testing.assert_close(out, step.prev_sample + math.sqrt(abar_s) * mu * (2 - mu) * (m - x0))


def test_recurrence_is_step_renoise_step():
    s = _sched("ddpm")
    t = int(s.timesteps[2])
    _, _, alpha = _coeffs(s, t)
    x = torch.randn(4, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(5)
    first = s.step(eps_fn(x, t), t, x, generator=gen).prev_sample
    n = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    x_again = math.sqrt(alpha) * first + math.sqrt(1 - alpha) * n
    expected = s.step(eps_fn(x_again, t), t, x_again, generator=gen).prev_sample
    out = tfg_step(s, eps_fn, log_prob, x, t, TFGConfig(n_recur=2), 0.0, 0.0, torch.Generator().manual_seed(5),
                   torch.Generator().manual_seed(7))
    torch.testing.assert_close(out, expected)
