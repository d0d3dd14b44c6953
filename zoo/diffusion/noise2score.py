"""Noise2Score (Kim & Ye, NeurIPS 2021): self-supervised denoising by Tweedie's formula on a learned score.

Paper: Kwanyoung Kim, Jong Chul Ye, "Noise2Score: Tweedie's Approach to Self-Supervised Image
Denoising without Clean Images", NeurIPS 2021, https://arxiv.org/abs/2106.07009 (authors' code:
https://github.com/cubeyoung/Noise2Score, read for the annealing ranges and the Poisson/Gamma
forms; nothing copied).

Noise2Score needs only noisy images ``y``. It works in two steps:

1. **Score of the noisy data** ``l'(y) = grad_y log p(y)``, learned with the amortised residual
   denoising autoencoder (AR-DAE, Lim et al. 2020) on the noisy images themselves:

   .. math::

       \\mathcal L(R) = \\mathbb E_{y,\\,u \\sim N(0, I)} \\big\\| u + \\sigma_a R(y + \\sigma_a u;\\ \\sigma_a) \\big\\|^2,

   whose minimiser is ``R(.; sigma_a) = grad log (p * N(0, sigma_a^2 I))``, the score of the noisy
   distribution smoothed a little more; as ``sigma_a -> 0`` it is ``l'(y)``. The paper anneals
   ``sigma_a`` linearly from ``sigma_max`` to ``sigma_min`` during training (:func:`annealed_sigma`)
   and feeds ``sigma_a`` to the network (amortisation over the noise level).
2. **Tweedie's formula** for the noise model ``p(y | x)``, an exponential family
   ``p(y | eta) = h(y) exp(eta^T T(y) - A(eta))``: the posterior mean of the natural parameter is
   ``E[eta | y] = l'(y) - grad log h(y)`` (for ``T(y) = y``), which gives, per noise model
   (the paper's closed forms; ``y`` and ``x`` in pixel units):

   * Gaussian ``y = x + sigma n``:            ``x_hat = y + sigma^2 l'(y)``  (:class:`GaussianNoise`);
   * Poisson ``y = zeta z, z ~ Poisson(x / zeta)``: ``x_hat = (y + zeta / 2) exp(zeta l'(y))``
     (:class:`PoissonNoise`): ``E[log(x/zeta) | y] = zeta l'(y) + psi(y/zeta + 1)`` exactly, with the
     digamma ``psi(n + 1) ~ log(n + 1/2)``; ``exact_digamma=True`` keeps the digamma;
   * Gamma ``y ~ Gamma(k, rate k / x)`` (mean ``x``, variance ``x^2 / k``):
     ``x_hat = k y / ((k - 1) - y l'(y))`` (:class:`GammaNoise`): ``E[k / x | y] = (k - 1)/y - l'(y)``
     exactly, and ``x_hat = k / E[k/x | y]``.

   The same trained score network serves every noise level of a model; only the Tweedie step
   knows the noise parameter.

Notation (code -> paper): ``y`` -> y (noisy image), ``score_net`` -> R(.; sigma_a) (AR-DAE),
``sigma_a`` -> sigma_a, ``sigma`` -> sigma (Gaussian noise std), ``zeta`` -> zeta (Poisson gain),
``k`` -> k / alpha (Gamma shape).

Departures (stated):

* the network is a small residual-free MLP over flattened 8x8 images (the paper: a U-Net);
  ``sigma_a`` enters as an extra input divided by ``sigma_max``;
* the score is read at the final ``sigma_a = sigma_min`` (the value it was trained at last), not
  extrapolated to 0;
* for Gamma and Poisson the denominator/exponent is used as written; results are clamped to the
  pixel range by the caller (the paper clamps to [0, 1] before PSNR, as here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "GammaNoise",
    "GaussianNoise",
    "NoiseModel",
    "PoissonNoise",
    "ScoreNet",
    "annealed_sigma",
    "ardae_loss",
    "noise_model",
    "psnr",
]


# ----------------------------------------------------------------------------- the score network
class ScoreNet(nn.Module):
    """An MLP ``(y, sigma_a) -> R(y; sigma_a)`` over flattened images (``dim`` values).

    Used as the AR-DAE score network (Noise2Score) and, with ``residual=True`` and
    ``sigma_a = 0``, as the Noise2Noise / supervised denoiser ``y + net(y)`` of the same size.
    """

    def __init__(self, dim: int, hidden: int = 256, depth: int = 2, sigma_scale: float = 1.0,
                 residual: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = dim + 1
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)
        self.dim = dim
        self.sigma_scale = float(sigma_scale)
        self.residual = residual

    def forward(self, y: torch.Tensor, sigma_a: float | torch.Tensor = 0.0) -> torch.Tensor:
        s = torch.as_tensor(sigma_a, dtype=y.dtype, device=y.device).reshape(-1, 1).expand(y.shape[0], 1)
        out = self.net(torch.cat([y, s / self.sigma_scale], dim=1))
        return y + out if self.residual else out


def annealed_sigma(step: int, total: int, sigma_max: float, sigma_min: float, anneal_frac: float = 1.0) -> float:
    """The paper's linear annealing of ``sigma_a``: ``sigma_max -> sigma_min`` over ``anneal_frac`` of training."""
    n = max(1.0, anneal_frac * total)
    p = min((step + 1) / n, 1.0)
    return sigma_max * (1.0 - p) + sigma_min * p


def ardae_loss(score_net: nn.Module, y: torch.Tensor, sigma_a: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """AR-DAE loss ``E || u + sigma_a R(y + sigma_a u; sigma_a) ||^2`` (mean over batch and pixels).

    Its minimiser is the score of ``p_y * N(0, sigma_a^2 I)``: ``-E[u | y~] / sigma_a``.
    """
    u = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype) if generator is not None \
        else torch.randn_like(y)
    r = score_net(y + sigma_a * u, sigma_a)
    return (u + sigma_a * r).pow(2).mean()


# ----------------------------------------------------------------------------- noise models and Tweedie
class NoiseModel:
    """A noise model ``p(y | x)``: draw ``y`` from clean ``x`` and invert it with Tweedie's formula."""

    name: str = ""

    def corrupt(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def tweedie(self, y: torch.Tensor, score: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def std_scale(self) -> float:  # pragma: no cover
        """A typical noise std in pixel units (sets the AR-DAE's sigma_a range)."""
        raise NotImplementedError


@dataclass(frozen=True)
class GaussianNoise(NoiseModel):
    """``y = x + sigma n``; Tweedie ``x_hat = y + sigma^2 l'(y)`` (exact posterior mean)."""

    sigma: float
    name: str = "gaussian"

    def corrupt(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x + self.sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)

    def tweedie(self, y: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        return y + self.sigma ** 2 * score

    def std_scale(self) -> float:
        return self.sigma


@dataclass(frozen=True)
class PoissonNoise(NoiseModel):
    """``y = zeta z, z ~ Poisson(x / zeta)``; Tweedie ``x_hat = (y + zeta/2) exp(zeta l'(y))``.

    ``exact_digamma=True`` returns ``zeta exp(E[log(x/zeta) | y])`` with the exact
    ``E[log(x / zeta) | y] = zeta l'(y) + psi(y / zeta + 1)`` (``l'`` the score of the continued
    count density); the paper's form replaces ``psi(n + 1)`` by ``log(n + 1/2)``.
    """

    zeta: float
    exact_digamma: bool = False
    name: str = "poisson"

    def corrupt(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        rate = (x.clamp_min(0.0) / self.zeta).cpu()
        return (self.zeta * torch.poisson(rate, generator=generator)).to(x.device, x.dtype)

    def tweedie(self, y: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        if self.exact_digamma:
            return self.zeta * torch.exp(self.zeta * score + torch.special.digamma(y / self.zeta + 1.0))
        return (y + self.zeta / 2.0) * torch.exp(self.zeta * score)

    def std_scale(self) -> float:
        return math.sqrt(self.zeta * 0.5)  # the std at mid-grey x = 0.5


@dataclass(frozen=True)
class GammaNoise(NoiseModel):
    """``y ~ Gamma(k, rate k / x)``; Tweedie ``x_hat = k y / ((k - 1) - y l'(y))``."""

    k: float
    name: str = "gamma"

    def corrupt(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # torch's Gamma sampler takes no generator: draw Gamma(k, 1) from the generator ourselves.
        g = _standard_gamma(self.k, x.shape, generator).to(x.device, x.dtype)
        return x * g / self.k

    def tweedie(self, y: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        return self.k * y / ((self.k - 1.0) - y * score)

    def std_scale(self) -> float:
        return 0.5 / math.sqrt(self.k)


def _standard_gamma(k: float, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    """Gamma(k, 1) draws from ``generator`` (Marsaglia & Tsang 2000, k >= 1; vectorised rejection)."""
    if k < 1:
        raise ValueError("Gamma shape k must be >= 1")
    d = k - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    n = int(torch.Size(shape).numel())
    out = torch.empty(n, dtype=torch.float64)
    todo = torch.arange(n)
    while todo.numel():
        m = todo.numel()
        z = torch.randn(m, generator=generator, dtype=torch.float64)
        u = torch.rand(m, generator=generator, dtype=torch.float64)
        v = (1 + c * z) ** 3
        ok = (v > 0) & (torch.log(u.clamp_min(1e-300)) < 0.5 * z ** 2 + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        out[todo[ok]] = (d * v)[ok]
        todo = todo[~ok]
    return out.reshape(shape).float()


def noise_model(name: str, param: float) -> NoiseModel:
    """``gaussian`` (sigma), ``poisson`` (zeta) or ``gamma`` (k)."""
    if name == "gaussian":
        return GaussianNoise(float(param))
    if name == "poisson":
        return PoissonNoise(float(param))
    if name == "gamma":
        return GammaNoise(float(param))
    raise ValueError(f"unknown noise model {name!r}; use gaussian, poisson or gamma")


def psnr(x_hat: torch.Tensor, x: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Per-image PSNR (dB) ``10 log10(peak^2 / MSE)`` over the last dimension, ``(N, d) -> (N,)``."""
    mse = (x_hat - x).pow(2).mean(dim=-1).clamp_min(1e-12)
    return 10.0 * torch.log10(peak ** 2 / mse)
