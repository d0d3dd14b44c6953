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


# ------------------------------------------------------------------ guidance with closed-form denoisers


class _GaussianOracle(nn.Module):
    """Exact epsilon-predictors of x_0 ~ N(m_c, s^2) for each class c; the null token has mean m_null.

    All share one variance, so (1 + w) eps_c - w eps_null is itself the exact predictor of
    N((1 + w) m_c - w m_null, s^2) at every noise level: guided sampling must land on that Gaussian.
    """

    def __init__(self, means: list[float], null_mean: float, s: float, sched: DDPMScheduler, null_token: int) -> None:
        super().__init__()
        self.means = torch.tensor(means + [null_mean])
        self.s, self.null_token = s, null_token
        self.null_class = null_token  # what guided_noise_prediction reads when given no null_class
        self.abar = sched.alphas_cumprod.float()

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        a = self.abar[t][:, None]
        idx = torch.where(c == self.null_token, torch.full_like(c, len(self.means) - 1), c)
        m = self.means[idx][:, None]
        return (1 - a).sqrt() * (x - a.sqrt() * m) / (a * self.s**2 + 1 - a)


def _sample_gaussian_oracle(w: float, null_token: int | None = None, n: int = 20_000) -> torch.Tensor:
    """Guided samples of class 0 (mean 1; class 1 has mean -2, the null token mean 0, s = 0.5).

    ``null_token`` given: the oracle's null token is that index while its ``null_class`` attribute
    names class 1, so only an explicit ``null_class=null_token`` reaches the unconditional model.
    """
    sched = DDPMScheduler(1000)
    sched.set_timesteps(100)
    oracle = _GaussianOracle([1.0, -2.0], 0.0, 0.5, sched, 2 if null_token is None else null_token)
    if null_token is not None:
        oracle.null_class = 1
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, generator=g)
    c = torch.zeros(n, dtype=torch.long)
    for t in sched.timesteps:
        eps = guided_noise_prediction(oracle, x, int(t), c, w, null_class=null_token)
        x = sched.step(eps, int(t), x, generator=g).prev_sample
    return x[:, 0]


@pytest.mark.parametrize("w", [0.0, 1.0, 2.0])
def test_guided_sampling_lands_on_the_tilted_gaussian(w: float) -> None:
    """Conditional mean 1, unconditional mean 0, s = 0.5: samples ~ N(1 + w, 0.25) in the paper's convention.

    w = 0 is the conditional model (mean 1); the diffusers "scale" convention would give mean w,
    a flipped sign 1 - w, and a sampler that drops w mean 1 for every w.
    """
    x = _sample_gaussian_oracle(w)
    assert x.mean().item() == pytest.approx(1.0 + w, abs=0.03)
    assert x.std().item() == pytest.approx(0.5, abs=0.03)


class _Recorder(nn.Module):
    """A stand-in denoiser that records the labels and timesteps it is called with."""

    def __init__(self, null_class: int = 3) -> None:
        super().__init__()
        self.null_class = null_class
        self.scale = nn.Parameter(torch.ones(()))
        self.seen_c: list[torch.Tensor] = []
        self.seen_t: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        self.seen_c.append(c.clone())
        self.seen_t.append(t.clone())
        return self.scale * x


@pytest.mark.parametrize("p_uncond", [0.1, 0.3])
def test_loss_drops_the_requested_fraction_of_labels_to_the_null_token(p_uncond: float) -> None:
    model = _Recorder(null_class=3)
    sched = DDPMScheduler(50)
    c = torch.randint(0, 3, (40_000,), generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    classifier_free_guidance_loss(model, sched, torch.randn(40_000, 2), c, p_uncond=p_uncond, generator=g)
    (seen,) = model.seen_c
    dropped = seen == 3
    assert float(dropped.float().mean()) == pytest.approx(p_uncond, abs=0.01)
    assert torch.equal(seen[~dropped], c[~dropped])
    # Dropout is independent of the class: every class loses about the same fraction.
    for k in range(3):
        assert float(dropped[c == k].float().mean()) == pytest.approx(p_uncond, abs=0.02)
    # An explicit null_class reaches the model instead of model.null_class.
    model = _Recorder(null_class=3)
    classifier_free_guidance_loss(model, sched, torch.randn(1000, 2), c[:1000], p_uncond=1.0, null_class=7)
    assert torch.all(model.seen_c[0] == 7)


def test_guided_noise_prediction_sends_c_then_the_null_token() -> None:
    model = _Recorder(null_class=3)
    x, c = torch.randn(4, 2), torch.tensor([0, 1, 2, 1])
    guided_noise_prediction(model, x, 17, c, 2.0)
    (seen,) = model.seen_c
    assert seen.tolist() == [0, 1, 2, 1, 3, 3, 3, 3]
    assert model.seen_t[0].tolist() == [17] * 8
    guided_noise_prediction(model, x, torch.tensor([5, 6, 7, 8]), c, 2.0, null_class=9)
    assert model.seen_c[1].tolist() == [0, 1, 2, 1, 9, 9, 9, 9]
    assert model.seen_t[1].tolist() == [5, 6, 7, 8] * 2
    # The override also steers real sampling (ignored, class 1 would act as the null: mean 1 + 3w = 7).
    assert _sample_gaussian_oracle(2.0, null_token=5, n=4000).mean().item() == pytest.approx(3.0, abs=0.05)


def test_guided_noise_prediction_by_hand() -> None:
    """A model returning its label as the prediction: eps_c = c, eps_null = 3, so (1 + w) c - 3 w."""

    class LabelModel(nn.Module):
        null_class = 3

        def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return c.to(x.dtype)[:, None].expand_as(x)

    x, c = torch.zeros(3, 2), torch.tensor([0, 1, 2])
    got = guided_noise_prediction(LabelModel(), x, 0, c, 0.5)
    torch.testing.assert_close(got, torch.tensor([-1.5, 0.0, 1.5])[:, None].expand(3, 2))
    got = guided_noise_prediction(LabelModel(), x, 0, c, torch.tensor([0.0, 1.0, 2.0]))
    torch.testing.assert_close(got, torch.tensor([0.0, -1.0, 0.0])[:, None].expand(3, 2))


def test_denoiser_uses_time_and_class_and_runs_in_float64() -> None:
    torch.manual_seed(0)
    model = ConditionalDenoiser(data_dim=3, num_classes=2, num_timesteps=100, hidden=16, depth=1)
    x, c = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    base = model(x, torch.tensor(10), c)
    assert not torch.allclose(base, model(x, torch.tensor(90), c))
    assert not torch.allclose(base, model(x, torch.tensor(10), torch.tensor([1, 0, 0, 1])))
    model64 = model.double()
    out = model64(x.double(), torch.tensor(10), c)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, base.double(), rtol=1e-5, atol=1e-6)
