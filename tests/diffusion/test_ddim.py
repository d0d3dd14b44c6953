"""DDIMScheduler: eta = 0 determinism, eta = 1 is DDPM's ancestral step, and a differential test of
both DDPM and DDIM steps against diffusers' schedulers (same betas, same inputs, 1e-5)."""

from __future__ import annotations

import pytest
import torch

from zoo.diffusion.ddim import DDIMScheduler
from zoo.diffusion.ddpm import DDPMScheduler


def test_eta_zero_is_deterministic() -> None:
    sched = DDIMScheduler(100, eta=0.0)
    sched.set_timesteps(10)
    x0 = torch.randn(16, 3)
    model = lambda x, t: 0.3 * x  # noqa: E731
    outs = []
    for seed in (0, 1):
        x = x0.clone()
        g = torch.Generator().manual_seed(seed)
        for t in sched.timesteps:
            x = sched.step(model(x, int(t)), int(t), x, generator=g).prev_sample
        outs.append(x)
    assert torch.equal(outs[0], outs[1])


def test_eta_one_equals_ddpm_posterior_step() -> None:
    ddpm, ddim = DDPMScheduler(200), DDIMScheduler(200, eta=1.0)
    for s in (ddpm, ddim):
        s.set_timesteps(20)
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    for t in ddpm.timesteps.tolist():
        assert torch.allclose(ddim.variance(t), ddpm.variance(t), rtol=1e-10, atol=0)
        eps, noise = torch.randn_like(x), torch.randn_like(x)
        a = ddpm.step(eps, t, x, noise=noise)
        b = ddim.step(eps, t, x, noise=noise)
        assert torch.allclose(a.prev_sample, b.prev_sample, atol=1e-5)
        assert torch.allclose(a.pred_original_sample, b.pred_original_sample)


def test_eta_zero_inverts_a_known_noise() -> None:
    # With the true noise as eps, DDIM (eta = 0) maps x_t exactly to x_s of the same (x0, eps).
    sched = DDIMScheduler(100, eta=0.0)
    sched.set_timesteps(10)
    x0, eps = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    t = int(sched.timesteps[3])
    s = sched.previous_timestep(t)
    xt = sched.add_noise(x0, eps, torch.full((8,), t))
    xs = sched.add_noise(x0, eps, torch.full((8,), s))
    assert torch.allclose(sched.step(eps, t, xt).prev_sample, xs, atol=1e-10)


def test_invalid_eta_raises() -> None:
    with pytest.raises(ValueError):
        DDIMScheduler(eta=-0.1)


# ---------------------------------------------------------------------- differential: diffusers


def _setup(n_train: int):
    """diffusers (skipped if absent), our DDPM scheduler and diffusers' kwargs for the same betas."""
    diffusers = pytest.importorskip("diffusers")
    ours_ddpm = DDPMScheduler(n_train, beta_schedule="cosine")
    betas = ours_ddpm.betas.float().numpy().tolist()
    common = {
        "num_train_timesteps": n_train,
        "trained_betas": betas,
        "clip_sample": False,
        "prediction_type": "epsilon",
    }
    return diffusers, ours_ddpm, common


@pytest.mark.parametrize("n_inf", [10, 100])
def test_ddpm_step_matches_diffusers(n_inf: int) -> None:
    diffusers, ours, common = _setup(100)
    ours.set_timesteps(n_inf)
    ref = diffusers.DDPMScheduler(**common, variance_type="fixed_small")
    ref.set_timesteps(timesteps=ours.timesteps.tolist())
    assert ref.timesteps.tolist() == ours.timesteps.tolist()
    torch.manual_seed(0)
    x = torch.randn(8, 3)
    for t in ours.timesteps.tolist():
        eps = torch.randn_like(x)
        a = ours.step(eps, t, x, generator=torch.Generator().manual_seed(t))
        b = ref.step(eps, t, x, generator=torch.Generator().manual_seed(t))
        assert torch.allclose(a.pred_original_sample, b.pred_original_sample, atol=1e-5, rtol=1e-5)
        assert torch.allclose(a.prev_sample, b.prev_sample, atol=1e-5, rtol=1e-5), t
        x = a.prev_sample


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("n_inf", [10, 100])
def test_ddim_step_matches_diffusers(eta: float, n_inf: int) -> None:
    # T = 100 and 10 steps: linspace(0, 99, 10) has a constant gap of 11, and diffusers' next timestep
    # is t - T // num_inference_steps, so it is given num_inference_steps = 100 // 11 = 9 to step by 11.
    diffusers, _, common = _setup(100)
    ours = DDIMScheduler(100, beta_schedule="cosine", eta=eta)
    ours.set_timesteps(n_inf)
    gaps = set((ours.timesteps[:-1] - ours.timesteps[1:]).tolist())
    assert len(gaps) == 1
    gap = gaps.pop()
    ref = diffusers.DDIMScheduler(**common, set_alpha_to_one=True)
    ref.set_timesteps(n_inf)
    ref.timesteps = ours.timesteps.clone()
    ref.num_inference_steps = 100 // gap
    torch.manual_seed(1)
    x = torch.randn(8, 3)
    for t in ours.timesteps.tolist():
        eps, noise = torch.randn_like(x), torch.randn_like(x)
        a = ours.step(eps, t, x, noise=noise)
        b = ref.step(eps, t, x, eta=eta, variance_noise=noise)
        assert torch.allclose(a.pred_original_sample, b.pred_original_sample, atol=1e-5, rtol=1e-5)
        assert torch.allclose(a.prev_sample, b.prev_sample, atol=1e-5, rtol=1e-5), t
        x = a.prev_sample
