"""Multiplicative (GBM) diffusion: the log-normal forward marginal against its closed form, the Hyvaerinen
target against autograd of the log-normal density, M-DSM = the additive epsilon-MSE on log x, the
Dale-Langevin sampler = exp of the additive ancestral sampler on log x, positivity, options honoured."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.diffusion import ConditionalDenoiser, DDPMScheduler, classifier_free_guidance_loss, sample
from zoo.diffusion.multiplicative import (LogTransform, gbm_forward, hyvarinen_from_eps, hyvarinen_target, mdsm_loss,
                                          sample_dale_langevin)

TR = LogTransform(0.1)


def test_log_transform_maps_the_shifted_pixel_range_onto_the_unit_box():
    mu, s = TR.mu, TR.s
    assert mu == pytest.approx(0.5 * (math.log(0.1) + math.log(1.1)))
    assert s == pytest.approx(0.5 * math.log(11.0))
    x = torch.tensor([0.1, 1.1, math.sqrt(0.11)], dtype=torch.float64)
    assert torch.allclose(TR.to_log(x), torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(TR.from_log(TR.to_log(x)), x)


def test_forward_marginal_log_mean_and_variance_match_the_closed_form():
    x0 = torch.tensor([0.1, 0.35, 0.8, 1.1], dtype=torch.float64)
    a = 0.3
    eps = torch.randn(200_000, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    logxt = gbm_forward(x0.expand(200_000, 4), a, eps, TR).log()
    # log x_t ~ N(sqrt(a) log x0 + (1 - sqrt(a)) mu, s^2 (1 - a)): hand-computed for a = 0.3
    mean = math.sqrt(a) * x0.log() + (1 - math.sqrt(a)) * TR.mu
    var = TR.s ** 2 * (1 - a)
    assert torch.allclose(logxt.mean(0), mean, atol=4 * math.sqrt(var / 200_000))
    assert torch.allclose(logxt.var(0), torch.full((4,), var, dtype=torch.float64), rtol=0.02)
    # per draw, exactly: the multiplicative-noise form x0^sqrt(a) * exp((1 - sqrt a) mu + s sqrt(1 - a) eps)
    one = gbm_forward(x0, a, eps[0], TR)
    assert torch.allclose(one.log(), mean + TR.s * math.sqrt(1 - a) * eps[0])
    # per-row abar (one per sample) broadcasts over the features
    rows = gbm_forward(x0.expand(2, 4), torch.tensor([0.3, 0.9], dtype=torch.float64), eps[:2], TR)
    assert torch.allclose(rows[1], gbm_forward(x0, 0.9, eps[1], TR))
    assert (gbm_forward(x0, 1e-4, 5 * eps[:100], TR) > 0).all()


def test_hyvarinen_target_is_x_times_the_grad_of_the_log_normal_kernel():
    x0 = torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64)
    a = 0.6
    m = math.sqrt(a) * x0.log() + (1 - math.sqrt(a)) * TR.mu
    v = TR.s ** 2 * (1 - a)
    xt = torch.tensor([0.3, 0.9, 0.05], dtype=torch.float64, requires_grad=True)
    # log-normal density in x: log N(log x; m, v) - log x
    logq = (-(xt.log() - m) ** 2 / (2 * v) - xt.log()).sum()
    (grad,) = torch.autograd.grad(logq, xt)
    assert torch.allclose(hyvarinen_target(xt.detach(), x0, a, TR), xt.detach() * grad)
    eps = torch.tensor([0.7, -1.2, 0.1], dtype=torch.float64)
    assert torch.allclose(hyvarinen_target(gbm_forward(x0, a, eps, TR), x0, a, TR), hyvarinen_from_eps(eps, a, TR))
    assert torch.allclose(hyvarinen_from_eps(torch.zeros(1), 0.5, TR), torch.tensor([-1.0]))


def _net(seed: int = 0) -> ConditionalDenoiser:
    torch.manual_seed(seed)
    return ConditionalDenoiser(6, 3, 100, hidden=16, depth=1)


def test_mdsm_loss_is_the_additive_epsilon_mse_on_log_x_and_trains_the_network():
    sched = DDPMScheduler(100, beta_schedule="cosine")
    net = _net()
    x0 = 0.1 + torch.rand(32, 6, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(2))
    loss = mdsm_loss(net, sched, x0, y, TR, p_uncond=0.2, generator=torch.Generator().manual_seed(3))
    ref = classifier_free_guidance_loss(net, sched, TR.to_log(x0), y, p_uncond=0.2,
                                        generator=torch.Generator().manual_seed(3))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-4)
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    # the unweighted M-DSM (lambda = 1) is the epsilon-MSE divided by s^2 (1 - abar_t) per sample
    g = torch.Generator().manual_seed(3)
    unw = mdsm_loss(net, sched, x0, y, TR, p_uncond=0.2, weighted=False, generator=g)
    assert unw.item() > loss.item() / TR.s ** 2  # 1 / (1 - abar) >= 1, > on some sampled t
    assert unw.item() != pytest.approx(loss.item(), rel=1e-3)


@pytest.mark.parametrize("clip", [None, 1.0])
def test_dale_langevin_is_the_exp_of_the_additive_sampler_on_log_x(clip):
    sched = DDPMScheduler(100, beta_schedule="cosine", clip_sample=clip)
    sched.set_timesteps(20)
    net = _net(1)
    labels = torch.arange(3).repeat_interleave(4)
    abar = sched.alphas_cumprod

    def eps_fn(u, t):
        if clip is None:  # unclipped, an untrained net diverges: the exact epsilon of u0 ~ N(0.3, I), plus a net term
            return (1 - abar[t]).sqrt() * (u - abar[t].sqrt() * 0.3) + 0.01 * net(u, torch.full((u.shape[0],), t), labels)
        return net(u, torch.full((u.shape[0],), t), labels)
    z = torch.randn(12, 6, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        x = sample_dale_langevin(sched, eps_fn, z, TR, generator=torch.Generator().manual_seed(7))
        u = sample(sched, eps_fn, z, progress=False, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(x.log(), TR.s * u + TR.mu, atol=1e-4)
    assert (x > 0).all() and torch.isfinite(x).all()
    if clip is not None:  # the last ancestral step returns the clipped u0_hat: x in [offset, 1 + offset]
        assert x.min() >= 0.1 - 1e-5 and x.max() <= 1.1 + 1e-5


def test_dale_langevin_keeps_every_iterate_positive_whatever_the_network_says():
    # an adversarial epsilon; the log-space clip keeps u finite (unclipped, exp overflows), it bounds
    # u0_hat but says nothing of the sign: every iterate exp(mu + s u) is positive
    sched = DDPMScheduler(100, beta_schedule="cosine", clip_sample=1.0)
    sched.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    wild = lambda u, t: 8 * torch.randn(u.shape, generator=g)  # noqa: E731
    seen = []
    real_step = sched.step

    def spy(eps, t, u, generator=None, noise=None):
        out = real_step(eps, t, u, generator=generator, noise=noise)
        seen.append(out.prev_sample)
        return out

    sched.step = spy
    x = sample_dale_langevin(sched, wild, torch.randn(50, 6, generator=g), TR, generator=g)
    assert len(seen) == 10 and all((TR.from_log(u) > 0).all() for u in seen)
    assert (x > 0).all() and torch.isfinite(x).all()
    # the additive sampler with the same clip, read as pixels + 0.1, has negative iterates
    seen.clear()
    g.manual_seed(0)
    sample(sched, wild, torch.randn(50, 6, generator=g), progress=False, generator=g)
    assert any(((u + 1) / 2 + 0.1 <= 0).any() for u in seen[:-1])
