"""Classifier-free guidance: label dropout, the training loss, eq. 6 and guided sampling with exact scores."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.diffusion import (
    ConditionalDenoiser,
    DDPMScheduler,
    classifier_free_guidance_loss,
    drop_labels,
    guided_epsilon,
    guided_noise_prediction,
)


def test_guided_epsilon_is_eq6() -> None:
    ec, eu = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.equal(guided_epsilon(ec, eu, 0.0), ec)  # w = 0: plain conditional model
    assert torch.allclose(guided_epsilon(ec, eu, -1.0), eu)  # w = -1: the unconditional model
    w = 2.5
    assert torch.allclose(guided_epsilon(ec, eu, w), (1 + w) * ec - w * eu)
    # The "guidance scale" form used by diffusers, with s = 1 + w.
    assert torch.allclose(guided_epsilon(ec, eu, w), eu + (1 + w) * (ec - eu), atol=1e-6)


def test_drop_labels_rate_and_edge_cases() -> None:
    c = torch.randint(0, 5, (20_000,))
    g = torch.Generator().manual_seed(0)
    dropped = drop_labels(c, 0.2, null_class=5, generator=g)
    is_null = dropped == 5
    assert abs(float(is_null.float().mean()) - 0.2) < 0.01
    assert torch.equal(dropped[~is_null], c[~is_null])  # kept labels are untouched
    assert torch.equal(drop_labels(c, 0.0, 5), c)
    assert torch.all(drop_labels(c, 1.0, 5) == 5)
    with pytest.raises(ValueError):
        drop_labels(c, 1.5, 5)


def test_denoiser_shapes_and_null_token() -> None:
    model = ConditionalDenoiser(data_dim=6, num_classes=3, num_timesteps=100, hidden=16, depth=2)
    assert model.null_class == 3 and model.class_emb.num_embeddings == 4
    x = torch.randn(5, 6)
    out = model(x, torch.tensor([0, 10, 10, 50, 99]), torch.tensor([0, 1, 2, 3, 3]))
    assert out.shape == x.shape
    # A scalar t broadcasts to the batch and equals the per-row form.
    c = torch.tensor([0, 1, 2, 3, 0])
    assert torch.allclose(model(x, torch.tensor(7), c), model(x, torch.full((5,), 7), c))
    # Images keep their shape.
    model_img = ConditionalDenoiser(data_dim=16, num_classes=2, num_timesteps=10, hidden=8, depth=1)
    assert model_img(torch.randn(2, 1, 4, 4), torch.tensor([1, 2]), torch.tensor([0, 2])).shape == (2, 1, 4, 4)


@pytest.mark.parametrize("p_uncond,null_gets_grad,labels_get_grad", [(0.0, False, True), (1.0, True, False)])
def test_loss_trains_the_null_token_only_when_labels_are_dropped(
    p_uncond: float, null_gets_grad: bool, labels_get_grad: bool
) -> None:
    torch.manual_seed(0)
    model = ConditionalDenoiser(2, 3, 100, hidden=16, depth=1)
    sched = DDPMScheduler(100)
    loss = classifier_free_guidance_loss(
        model, sched, torch.randn(64, 2), torch.randint(0, 3, (64,)), p_uncond=p_uncond
    )
    assert loss.ndim == 0 and math.isfinite(float(loss.detach()))
    loss.backward()
    grad = model.class_emb.weight.grad
    assert bool(grad[model.null_class].abs().sum() > 0) == null_gets_grad
    assert bool(grad[: model.null_class].abs().sum() > 0) == labels_get_grad


def test_loss_is_the_noise_regression_objective() -> None:
    """With a shared generator the loss equals the hand-computed Algorithm 1 objective."""
    model = ConditionalDenoiser(2, 3, 50, hidden=8, depth=1)
    sched = DDPMScheduler(50)
    x0, c = torch.randn(32, 2), torch.randint(0, 3, (32,))
    got = classifier_free_guidance_loss(model, sched, x0, c, p_uncond=0.3, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    c_in = drop_labels(c, 0.3, model.null_class, generator=g)
    t = torch.randint(0, 50, (32,), generator=g)
    eps = torch.randn(32, 2, generator=g)
    abar = sched.alphas_cumprod[t].float()[:, None]
    want = F.mse_loss(model(abar.sqrt() * x0 + (1 - abar).sqrt() * eps, t, c_in), eps)
    assert torch.allclose(got, want)


def test_guided_noise_prediction_matches_separate_passes_and_per_sample_w() -> None:
    torch.manual_seed(0)
    model = ConditionalDenoiser(3, 4, 100, hidden=16, depth=2)
    x, c = torch.randn(6, 3), torch.tensor([0, 1, 2, 3, 0, 1])
    null = torch.full_like(c, model.null_class)
    with torch.no_grad():
        ec, eu = model(x, torch.tensor(40), c), model(x, torch.tensor(40), null)
    w = torch.tensor([0.0, 0.5, 1.0, 2.0, 4.0, 4.0])
    got = guided_noise_prediction(model, x, 40, c, w)
    assert torch.allclose(got, (1 + w[:, None]) * ec - w[:, None] * eu, atol=1e-5)
    assert torch.allclose(guided_noise_prediction(model, x, 40, c, 0.0), ec, atol=1e-6)


class _MixtureOracle(nn.Module):
    """The exact epsilon-predictor for x_0 ~ equal mixture of N(mu_k, s^2 I); class K (null) is the marginal."""

    def __init__(self, means: torch.Tensor, s: float, sched: DDPMScheduler) -> None:
        super().__init__()
        self.means, self.s = means, s
        self.abar = sched.alphas_cumprod.float()
        self.num_classes, self.data_dim = means.shape
        self.null_class = self.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        a = self.abar[t][:, None]
        var = a * self.s**2 + 1 - a
        diff = x[:, None, :] - a.sqrt()[:, None] * self.means[None]  # (N, K, D)
        resp = torch.softmax(-(diff**2).sum(-1) / (2 * var), dim=1)  # p(k | x_t) under equal priors
        onehot = F.one_hot(c.clamp(max=self.num_classes - 1), self.num_classes).float()
        weights = torch.where((c == self.null_class)[:, None], resp, onehot)
        # E[eps | x_t, c] = -sqrt(1 - a) grad log p_t(x_t | c)
        return (1 - a).sqrt() * (weights[..., None] * diff).sum(1) / var


def _guided_samples(w: float, n: int = 8000) -> torch.Tensor:
    sched = DDPMScheduler(1000)
    sched.set_timesteps(100)
    oracle = _MixtureOracle(torch.tensor([[-1.0], [1.0]]), 1.0, sched)
    g = torch.Generator().manual_seed(0)
    x, c = torch.randn(n, 1, generator=g), torch.zeros(n, dtype=torch.long)
    for t in sched.timesteps:
        x = sched.step(guided_noise_prediction(oracle, x, int(t), c, w), int(t), x, generator=g).prev_sample
    return x[:, 0]


def test_exact_guidance_on_two_overlapping_gaussians() -> None:
    """Paper Fig. 2 in 1-D: w = 0 samples class 0 = N(-1, 1); w = 3 moves mass away from class 1 and narrows it."""
    plain, guided = _guided_samples(0.0), _guided_samples(3.0)
    assert plain.mean().item() == pytest.approx(-1.0, abs=0.05)
    assert plain.std().item() == pytest.approx(1.0, abs=0.05)
    agree_plain = (plain < 0).float().mean().item()  # the Bayes classifier's verdict "class 0"
    agree_guided = (guided < 0).float().mean().item()
    assert agree_plain == pytest.approx(0.8413, abs=0.02)  # Phi(1)
    assert agree_guided > agree_plain + 0.1
    assert guided.std().item() < 0.9 * plain.std().item()
