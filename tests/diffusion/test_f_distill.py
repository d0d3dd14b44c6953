"""f-distill: the weightings are h(r) = f''(r) r^2 of their f, the surrogate's gradient is the exact
gradient of D_f(p || q_theta) on Gaussians (reverse KL = DMD), the discriminator's optimal logit is
log p/q, and the fake-score loss is minimised by the generator's true score."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.diffusion.f_distill import WEIGHTINGS, discriminator_loss, f_weight, fake_score_loss, generator_loss

F_OF_R = {
    "reverse_kl": lambda r: -torch.log(r),
    "forward_kl": lambda r: r * torch.log(r),
    "js": lambda r: r * torch.log(r) - (1 + r) * torch.log((1 + r) / 2),
    "squared_hellinger": lambda r: (r.sqrt() - 1) ** 2,
    "jeffreys": lambda r: (r - 1) * torch.log(r),
}


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_weight_is_f_second_derivative_times_r_squared(name):
    r = torch.tensor([0.05, 0.3, 1.0, 2.5, 9.0], dtype=torch.float64, requires_grad=True)
    (d1,) = torch.autograd.grad(F_OF_R[name](r).sum(), r, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), r)
    h = f_weight(r.detach().log(), name, normalize=False)
    assert torch.allclose(h, d2 * r.detach() ** 2, rtol=1e-9)


def test_normalised_weights_have_mean_one_and_reverse_kl_is_uniform():
    log_r = torch.randn(100, requires_grad=True)
    for name in WEIGHTINGS:
        h = f_weight(log_r, name)
        assert h.mean().item() == pytest.approx(1.0) and not h.requires_grad
    assert torch.equal(f_weight(log_r, "reverse_kl"), torch.ones(100))
    with pytest.raises(ValueError):
        f_weight(log_r, "tv")


def _d_f(name: str, theta: float, mu_p: float = 0.0) -> float:
    """D_f(p || q) = int q f(p/q) for p = N(mu_p, 1), q = N(theta, 1), by quadrature."""
    x = torch.linspace(-14, 14, 200001, dtype=torch.float64)
    lp = -0.5 * (x - mu_p) ** 2 - 0.5 * math.log(2 * math.pi)
    lq = -0.5 * (x - theta) ** 2 - 0.5 * math.log(2 * math.pi)
    vals = lq.exp() * F_OF_R[name]((lp - lq).exp())
    return float(torch.trapezoid(vals, x))


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_surrogate_gradient_is_the_gradient_of_the_f_divergence(name):
    """Generator x = theta + z (q = N(theta, 1)), teacher p = N(0, 1), exact scores and log-ratio, no noise."""
    theta0 = 0.7
    theta = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    n = 40000
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    z = math.sqrt(2) * torch.erfinv(2 * u - 1)  # exact quantiles of N(0, 1)
    x = (theta + z).unsqueeze(1)
    xd = x.detach()
    s_p, s_q = -xd, -(xd - theta0)
    log_r = (-0.5 * xd**2 + 0.5 * (xd - theta0) ** 2).squeeze(1)
    loss = generator_loss(x, s_p, s_q, log_r, name, normalize=False)
    (g,) = torch.autograd.grad(loss, theta)
    h = 1e-4
    fd = (_d_f(name, theta0 + h) - _d_f(name, theta0 - h)) / (2 * h)
    assert float(g) == pytest.approx(fd, rel=2e-3)


def test_reverse_kl_is_dmd_and_forward_kl_reweights_towards_the_teacher():
    torch.manual_seed(0)
    theta = torch.zeros(3, 2, requires_grad=True)
    idx = torch.randint(3, (512,))
    x = theta[idx] + torch.randn(512, 2)
    s_p, s_q = torch.randn(512, 2), torch.randn(512, 2)
    log_r = torch.randn(512)
    (g_rev,) = torch.autograd.grad(generator_loss(x, s_p, s_q, log_r, "reverse_kl"), theta, retain_graph=True)
    dmd = torch.zeros(3, 2).index_add_(0, idx, s_q - s_p) / 512
    assert torch.allclose(g_rev, dmd, atol=1e-6)
    (g_fwd,) = torch.autograd.grad(generator_loss(x, s_p, s_q, log_r, "forward_kl"), theta, retain_graph=True)
    w = log_r.exp() / log_r.exp().mean()
    assert torch.allclose(g_fwd, torch.zeros(3, 2).index_add_(0, idx, w[:, None] * (s_q - s_p)) / 512, atol=1e-6)
    assert not torch.allclose(g_fwd, g_rev)
    # the time weighting multiplies each sample's term
    (g_t,) = torch.autograd.grad(generator_loss(x, s_p, s_q, log_r, "reverse_kl", time_weight=torch.full((512,), 2.0)), theta)
    assert torch.allclose(g_t, 2 * g_rev, atol=1e-6)


def test_discriminator_optimal_logit_is_the_log_density_ratio():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(200000, generator=g) + 1.0  # p = N(1, 1)
    fake = torch.randn(200000, generator=g)  # q = N(0, 1)
    log_ratio = lambda x: x - 0.5  # log N(x; 1, 1) / N(x; 0, 1)
    best = float(discriminator_loss(log_ratio(real), log_ratio(fake)))
    for c in (-0.3, 0.3):
        assert float(discriminator_loss(log_ratio(real) + c, log_ratio(fake) + c)) > best + 1e-3
    for a in (0.7, 1.3):
        assert float(discriminator_loss(a * log_ratio(real), a * log_ratio(fake))) > best + 1e-3


def test_fake_score_loss_is_minimised_by_the_true_noised_score_and_detaches_the_generator():
    g = torch.Generator().manual_seed(0)
    theta = torch.tensor([1.5, -0.5], requires_grad=True)
    x0 = theta + torch.randn(100000, 2, generator=g)  # q = N(theta, I): q_t = N(sqrt(a) theta, I)
    abar = torch.full((100000,), 0.6)
    true = lambda xt, a: -(xt - a.sqrt().unsqueeze(1) * theta.detach())
    loss = fake_score_loss(true, x0, abar, generator=torch.Generator().manual_seed(1))
    assert not loss.requires_grad
    assert float(loss) == pytest.approx(2 * 0.6, rel=0.02)  # E||sigma s + eps||^2 = d (1 - sigma^2) = 2 * abar
    worse = lambda xt, a: 1.2 * true(xt, a)
    assert float(fake_score_loss(worse, x0, abar, generator=torch.Generator().manual_seed(1))) > float(loss) + 0.01
