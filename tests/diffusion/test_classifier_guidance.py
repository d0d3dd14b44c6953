"""Classifier guidance and the flow-matching post-step (Zhao & Schwing 2025): with the EXACT noisy
classifier of an analytic mixture, the classifier-implied conditional epsilon is the exact conditional
epsilon (Bayes' rule), and CFGGuider(w) on the pair is classifier guidance of scale 1 + w; it runs under
DDPM and DDIM (w = -1 is the unconditional model); the classifier's weights are not differentiated;
flow matching's loss vanishes at the true velocity and the Euler post-step transports exactly along a
constant field."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zoo.diffusion.analytic import GaussianMixture
from zoo.diffusion.classifier_guidance import (
    FlowVelocity,
    NoisyClassifier,
    classifier_guidance_model_fn,
    classifier_log_prob_grad,
    flow_matching_loss,
    noisy_classifier_loss,
    pair_by_class,
    postprocess,
)
from zoo.diffusion.ddim import DDIMScheduler
from zoo.diffusion.ddpm import DDPMScheduler
from zoo.diffusion.guidance import CFGGuider, sample

T = 100


def _mixture() -> GaussianMixture:
    ang = 2 * math.pi * torch.arange(3, dtype=torch.float64) / 3
    return GaussianMixture(1.5 * torch.stack([ang.cos(), ang.sin()], 1), stds=0.7, labels=torch.arange(3))


class ExactClassifier(nn.Module):
    """logits = log p_t(x_t | c) of the noised mixture (equal priors, so softmax is the exact posterior)."""

    def __init__(self, mix: GaussianMixture, abar: torch.Tensor) -> None:
        super().__init__()
        self.mix, self.abar = mix, abar
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        mt = self.mix.noised(float(self.abar[int(t[0])]))
        return torch.stack([mt.log_prob(x.double(), torch.full((x.shape[0],), k)) for k in range(3)], 1).float() + 0 * self.dummy


def _setup(sched):
    mix = _mixture()
    abar = sched.alphas_cumprod
    clf = ExactClassifier(mix, abar)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])

    def eps_u(x, t):
        return mix.eps(x.double(), float(abar[int(t)])).float()

    return mix, abar, clf, labels, eps_u


@pytest.mark.parametrize("t", [5, 40, 90])
def test_scale_one_is_bayes_rule_with_the_exact_classifier(t):
    sched = DDPMScheduler(T)
    mix, abar, clf, labels, eps_u = _setup(sched)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(t))
    eps_c, eu = classifier_guidance_model_fn(eps_u, clf, labels, abar)(x, t)
    exact = mix.eps(x.double(), float(abar[t]), labels).float()
    assert torch.allclose(eu, eps_u(x, t))
    assert torch.allclose(eps_c, exact, atol=1e-4)


def test_cfg_guider_on_the_pair_is_classifier_guidance_of_scale_one_plus_w():
    sched = DDPMScheduler(T)
    mix, abar, clf, labels, eps_u = _setup(sched)
    x, t, w = torch.randn(6, 2, generator=torch.Generator().manual_seed(0)), 30, 2.0
    ec, eu = classifier_guidance_model_fn(eps_u, clf, labels, abar)(x, t)
    g = classifier_log_prob_grad(clf, x, t, labels)
    expected = eu - (1 + w) * math.sqrt(1 - float(abar[t])) * g
    assert torch.allclose(CFGGuider(w).guide(ec, eu, 0.5), expected, atol=1e-5)


def test_gradient_is_of_log_p_c_given_x_and_leaves_the_classifier_alone():
    sched = DDPMScheduler(T)
    mix, abar, clf, labels, _ = _setup(sched)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    g = classifier_log_prob_grad(clf, x, 20, labels)
    h = 1e-3
    for j in range(2):
        e = torch.zeros_like(x)
        e[:, j] = h
        tt = torch.full((6,), 20)
        f = lambda z: torch.log_softmax(clf(z, tt).double(), 1).gather(1, labels[:, None]).squeeze(1)
        fd = (f(x + e) - f(x - e)) / (2 * h)
        assert torch.allclose(g[:, j].double(), fd, atol=2e-3)
    assert clf.dummy.grad is None and not g.requires_grad


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_runs_under_both_samplers_and_w_minus_one_is_unconditional(sampler):
    make = {"ddpm": lambda: DDPMScheduler(T), "ddim": lambda: DDIMScheduler(T, eta=0.0)}[sampler]
    outs = {}
    for w in (-1.0, 0.0, 3.0):
        sched = make()
        sched.set_timesteps(20)
        mix, abar, clf, labels, eps_u = _setup(sched)
        fn = classifier_guidance_model_fn(eps_u, clf, labels, abar)
        x0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(2))
        outs[w] = sample(sched, fn, x0, guider=CFGGuider(w), progress=False, generator=torch.Generator().manual_seed(3))
    sched = make()
    sched.set_timesteps(20)
    _, _, _, _, eps_u = _setup(sched)
    x0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(2))
    uncond = sample(sched, eps_u, x0, progress=False, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(outs[-1.0], uncond, atol=1e-5)
    assert not torch.allclose(outs[0.0], outs[3.0])


def test_noisy_classifier_loss_is_cross_entropy_on_noised_inputs():
    sched = DDPMScheduler(T)
    clf = NoisyClassifier(2, 3, T, hidden=16)
    x, y = torch.randn(64, 2), torch.randint(3, (64,))
    torch.manual_seed(0)
    loss = noisy_classifier_loss(clf, sched, x, y)
    torch.manual_seed(0)
    t = torch.randint(0, T, (64,))
    xt = sched.add_noise(x, torch.randn_like(x), t)
    assert loss.item() == pytest.approx(nn.functional.cross_entropy(clf(xt, t), y).item(), abs=1e-6)


class ConstantVelocity(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.d = d

    def forward(self, x, s, c):
        return self.d.expand_as(x)


def test_flow_matching_loss_vanishes_at_the_true_velocity_and_the_post_step_transports_along_it():
    d = torch.tensor([0.3, -1.2])
    x_gen = torch.randn(50, 2)
    c = torch.zeros(50, dtype=torch.long)
    assert flow_matching_loss(ConstantVelocity(d), x_gen, x_gen + d, c).item() == pytest.approx(0.0, abs=1e-10)
    assert flow_matching_loss(ConstantVelocity(-d), x_gen, x_gen + d, c).item() > 1.0
    assert torch.allclose(postprocess(ConstantVelocity(d), x_gen, c, steps=7), x_gen + d, atol=1e-6)


def test_pair_by_class_pairs_within_the_class():
    xg, yg = torch.randn(30, 2), torch.arange(3).repeat(10)
    xr = torch.cat([torch.full((20, 2), float(k)) for k in range(3)])
    yr = torch.arange(3).repeat_interleave(20)
    _, paired, y = pair_by_class(xg, yg, xr, yr, torch.Generator().manual_seed(0))
    assert torch.equal(paired[:, 0], y.float())


def test_flow_velocity_is_class_conditional():
    v = FlowVelocity(2, 3, hidden=16)
    x, s = torch.randn(4, 2), torch.rand(4)
    assert not torch.allclose(v(x, s, torch.zeros(4, dtype=torch.long)), v(x, s, torch.ones(4, dtype=torch.long)))
