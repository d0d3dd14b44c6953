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


# ------------------------------------------------------------------ hand-derived values
# A three-step linear schedule with betas (0.1, 0.2, 0.3) has alpha-bar = (0.9, 0.72, 0.504): every
# coefficient of the reverse step is then a number written out by hand below.


def _tiny() -> DDPMScheduler:
    return DDPMScheduler(3, beta_schedule="linear", beta_start=0.1, beta_end=0.3)


def test_cosine_schedule_hand_values() -> None:
    """Improved DDPM eq. 17 with T = 4: alpha-bar_t = f(t + 1) / f(0), f(t) = cos^2(((t/4 + s)/(1 + s)) pi/2)."""
    f = [math.cos(((t / 4 + 0.008) / 1.008) * math.pi / 2) ** 2 for t in range(5)]
    want = [f[1] / f[0], f[2] / f[0], f[3] / f[0]]
    want.append(want[-1] * (1 - 0.999))  # the last beta, 1 - f(4)/f(3) = 1, is clipped to 0.999
    torch.testing.assert_close(cosine_alphas_cumprod(4), torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=0)
    # T = 1000, halfway: cos^2((0.5 + 0.008)/1.008 pi/2) / cos^2(0.008/1.008 pi/2) = 0.49384...
    half = math.cos(0.508 / 1.008 * math.pi / 2) ** 2 / math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    assert float(cosine_alphas_cumprod(1000)[499]) == pytest.approx(half, rel=1e-12)
    assert half == pytest.approx(0.49384, abs=1e-5)


def test_tiny_schedule_step_by_hand() -> None:
    """From t = 2 to t = 1: beta = 0.3, beta-tilde = 0.28/0.496 * 0.3, mean = c0 x0_hat + ct x_t."""
    sched = _tiny()
    torch.testing.assert_close(sched.alphas_cumprod, torch.tensor([0.9, 0.72, 0.504], dtype=torch.float64))
    xt, eps = torch.tensor([[1.0]], dtype=torch.float64), torch.tensor([[0.5]], dtype=torch.float64)
    x0_hat = (1.0 - math.sqrt(0.496) * 0.5) / math.sqrt(0.504)
    c0, ct = math.sqrt(0.72) * 0.3 / 0.496, math.sqrt(0.7) * 0.28 / 0.496
    out = sched.step(eps, 2, xt, noise=torch.tensor([[2.0]], dtype=torch.float64))
    beta_tilde = 0.28 / 0.496 * 0.3
    assert float(out.pred_original_sample) == pytest.approx(x0_hat, rel=1e-12)
    assert float(out.prev_sample) == pytest.approx(c0 * x0_hat + ct * 1.0 + 2.0 * math.sqrt(beta_tilde), rel=1e-12)
    assert float(sched.variance(2)) == pytest.approx(beta_tilde, rel=1e-12)
    # The variance interpolation is geometric in v (Improved DDPM eq. 15), not linear.
    for v, want in ((1.0, 0.3), (0.5, math.sqrt(0.3 * beta_tilde)), (0.25, 0.3**0.25 * beta_tilde**0.75)):
        sched_v = DDPMScheduler(3, "linear", 0.1, 0.3, variance_interp=v)
        assert float(sched_v.variance(2)) == pytest.approx(want, rel=1e-12)
    # Respaced to two steps (t = 2 -> 0): the jump's beta is 1 - 0.504/0.9 = 0.44.
    sched.set_timesteps(2)
    assert sched.timesteps.tolist() == [2, 0]
    out = sched.step(eps, 2, xt, noise=torch.zeros_like(xt))
    c0, ct = math.sqrt(0.9) * 0.44 / 0.496, math.sqrt(0.56) * 0.1 / 0.496
    assert float(out.prev_sample) == pytest.approx(c0 * x0_hat + ct * 1.0, rel=1e-12)
    assert float(sched.variance(2)) == pytest.approx(0.1 / 0.496 * 0.44, rel=1e-12)


@pytest.mark.parametrize("v", [0.0, 1.0])
def test_last_step_adds_no_noise_for_any_variance(v: float) -> None:
    """t = 0 -> x_0: the mean is x0_hat (c0 = 1, ct = 0), even with the "fixed large" variance v = 1."""
    sched = DDPMScheduler(3, "linear", 0.1, 0.3, variance_interp=v)
    xt, eps = torch.tensor([[1.0]], dtype=torch.float64), torch.tensor([[0.5]], dtype=torch.float64)
    out = sched.step(eps, 0, xt, noise=torch.tensor([[5.0]], dtype=torch.float64))
    assert float(out.prev_sample) == pytest.approx((1.0 - math.sqrt(0.1) * 0.5) / math.sqrt(0.9), rel=1e-12)
    assert float(sched.variance(0)) == 0.0


def test_one_step_mean_is_the_exact_posterior_mean_of_a_gaussian() -> None:
    """x_0 ~ N(mu, s^2): with the exact noise prediction the step's mean is E[x_s | x_t], by Gaussian conditioning.

    Written from the joint of (x_s, x_t) with x_0 integrated out: Var x_s = a_s s^2 + 1 - a_s and
    Cov(x_s, x_t) = sqrt(a_t/a_s) Var x_s; the posterior mean is linear in x0_hat, so the tower
    rule makes the ancestral step's mean exact (its variance is beta-tilde, not the full one).
    """
    mu, s = 0.7, 0.4
    sched = DDPMScheduler(1000, variance_interp=0.0)
    sched.set_timesteps(20)
    xt = torch.linspace(-3.0, 3.0, 13, dtype=torch.float64)[:, None]
    for t in (int(sched.timesteps[1]), int(sched.timesteps[10]), int(sched.timesteps[-2])):
        sp = sched.previous_timestep(t)
        at, as_ = float(sched.alphas_cumprod[t]), float(sched.alphas_cumprod[sp])
        var_t = at * s * s + 1 - at
        eps = math.sqrt(1 - at) * (xt - math.sqrt(at) * mu) / var_t  # E[eps | x_t]
        var_s = as_ * s * s + 1 - as_
        want = math.sqrt(as_) * mu + math.sqrt(at / as_) * var_s / var_t * (xt - math.sqrt(at) * mu)
        got = sched.step(eps, t, xt, noise=torch.zeros_like(xt)).prev_sample
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_single_inference_step_starts_from_the_noisiest_timestep() -> None:
    """A one-step sampler denoises x_{T-1} straight to x0_hat (before the fix it ran only t = 0)."""
    sched = DDPMScheduler(1000)
    sched.set_timesteps(1)
    assert sched.timesteps.tolist() == [999]
    assert sched.previous_timestep(999) == -1
    for n in (2, 3, 10, 1000):
        sched.set_timesteps(n)
        ts = sched.timesteps.tolist()
        assert ts[0] == 999 and ts[-1] == 0 and len(set(ts)) == n


def test_sample_timesteps_cover_the_range_uniformly() -> None:
    sched = DDPMScheduler(5)
    t = sched.sample_timesteps(20_000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(t, minlength=5)
    assert counts.numel() == 5 and int(t.min()) == 0 and int(t.max()) == 4
    assert torch.allclose(counts / 20_000.0, torch.full((5,), 0.2), atol=0.015)
