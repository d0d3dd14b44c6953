"""DDPMScheduler: schedule, forward noising, the posterior step (against Gaussian conditioning) and an
exact-score sampling loop that must recover a known Gaussian."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.diffusion.ddpm import DDPMScheduler, cosine_alphas_cumprod


def test_cosine_schedule_is_a_valid_noise_schedule() -> None:
    abar = cosine_alphas_cumprod(1000)
    assert abar.dtype == torch.float64 and abar.shape == (1000,)
    assert torch.all(abar[1:] < abar[:-1])  # strictly more noise at every step
    assert 0.99 < abar[0] <= 1.0 and abar[-1] < 1e-4  # from almost clean to almost pure noise
    sched = DDPMScheduler(1000)
    assert torch.all((sched.betas > 0) & (sched.betas <= 0.999))
    assert torch.allclose(torch.cumprod(1 - sched.betas, 0), sched.alphas_cumprod)


def test_linear_schedule_matches_ddpm() -> None:
    sched = DDPMScheduler(1000, beta_schedule="linear")
    assert torch.allclose(sched.betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))


@pytest.mark.parametrize(
    "kwargs",
    [{"num_train_timesteps": 0}, {"variance_interp": 1.5}, {"clip_sample": 0.0}, {"beta_schedule": "sigmoid"}],
)
def test_invalid_arguments_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DDPMScheduler(**kwargs)


def test_add_noise_is_the_forward_marginal() -> None:
    sched = DDPMScheduler(100)
    x0 = torch.randn(4, 3, 2)
    noise = torch.randn(4, 3, 2)
    t = torch.tensor([0, 10, 50, 99])
    xt = sched.add_noise(x0, noise, t)
    for i, ti in enumerate(t.tolist()):
        a = float(sched.alphas_cumprod[ti])
        assert torch.allclose(xt[i], math.sqrt(a) * x0[i] + math.sqrt(1 - a) * noise[i], atol=1e-6)
    # predict_x0 inverts it given the true noise.
    assert torch.allclose(sched.predict_x0(noise[2:3], 50, xt[2:3]), x0[2:3], atol=1e-4)


def test_set_timesteps_spacing_and_bounds() -> None:
    sched = DDPMScheduler(1000)
    sched.set_timesteps(100)
    ts = sched.timesteps
    assert len(ts) == 100 and int(ts[0]) == 999 and int(ts[-1]) == 0
    assert torch.all(ts[1:] < ts[:-1])
    assert sched.previous_timestep(int(ts[0])) == int(ts[1]) and sched.previous_timestep(0) == -1
    with pytest.raises(ValueError):
        sched.set_timesteps(1001)


@pytest.mark.parametrize("steps", [1000, 50])
def test_step_is_the_gaussian_posterior(steps: int) -> None:
    """With the true noise, step's mean/variance equal q(x_s | x_t, x_0) derived by Gaussian conditioning."""
    sched = DDPMScheduler(1000, variance_interp=0.0)
    sched.set_timesteps(steps)
    t = int(sched.timesteps[steps // 3])
    s = sched.previous_timestep(t)
    at, as_ = float(sched.alphas_cumprod[t]), float(sched.alphas_cumprod[s])
    x0, e = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    xt = math.sqrt(at) * x0 + math.sqrt(1 - at) * e
    # Joint of (x_s, x_t) given x_0: x_t = sqrt(at/as) x_s + sqrt(1 - at/as) e'.
    r = at / as_
    cov_st = math.sqrt(r) * (1 - as_)
    mean = math.sqrt(as_) * x0 + cov_st / (1 - at) * (xt - math.sqrt(at) * x0)
    var = (1 - as_) - cov_st**2 / (1 - at)
    out = sched.step(e, t, xt, noise=torch.zeros_like(xt))
    assert torch.allclose(out.prev_sample, mean, atol=1e-9)
    assert torch.allclose(out.pred_original_sample, x0, atol=1e-9)
    assert float(sched.variance(t)) == pytest.approx(var, rel=1e-9)
    # v = 1 uses the forward beta of the jump instead.
    sched_large = DDPMScheduler(1000, variance_interp=1.0)
    sched_large.set_timesteps(steps)
    assert float(sched_large.variance(t)) == pytest.approx(1 - r, rel=1e-9)


def test_last_step_returns_x0_hat_and_clips() -> None:
    sched = DDPMScheduler(100, clip_sample=1.0)
    xt = torch.full((3, 2), 5.0)
    out = sched.step(torch.zeros_like(xt), 0, xt, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.prev_sample, out.pred_original_sample)  # no fresh noise after t = 0
    assert float(out.prev_sample.max()) <= 1.0


def test_step_is_deterministic_given_a_generator() -> None:
    sched = DDPMScheduler(100)
    xt, eps = torch.randn(8, 2), torch.randn(8, 2)
    a = sched.step(eps, 50, xt, generator=torch.Generator().manual_seed(3)).prev_sample
    b = sched.step(eps, 50, xt, generator=torch.Generator().manual_seed(3)).prev_sample
    assert torch.equal(a, b)


@pytest.mark.parametrize("schedule,steps", [("cosine", 100), ("linear", 200)])
def test_sampling_with_the_exact_noise_predictor_recovers_a_gaussian(schedule: str, steps: int) -> None:
    """For x_0 ~ N(mu, s^2 I) the optimal eps prediction is analytic; the ancestral loop must return N(mu, s^2 I)."""
    mu, s = torch.tensor([1.5, -0.5]), 0.5
    sched = DDPMScheduler(1000, beta_schedule=schedule, variance_interp=0.3)
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20_000, 2, generator=g)
    for t in sched.timesteps:
        a = float(sched.alphas_cumprod[int(t)])
        # E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) mu) / (a s^2 + 1 - a)
        eps = math.sqrt(1 - a) * (x - math.sqrt(a) * mu) / (a * s * s + 1 - a)
        x = sched.step(eps, int(t), x, generator=g).prev_sample
    assert torch.allclose(x.mean(0), mu, atol=0.03)
    assert torch.allclose(x.std(0), torch.full((2,), s), atol=0.03)
