"""Multiplicative (geometric-Brownian) denoising diffusion: Shetty, Prasath & Seelamantula (2025).

"Dale meets Langevin: A Multiplicative Denoising Diffusion Model" (arXiv 2510.02730) noises
strictly positive data with geometric Brownian motion (GBM) instead of additive Gaussian noise,
learns the *Hyvaerinen score* ``x * grad_x log p_t(x)`` with a multiplicative denoising
score-matching loss (M-DSM), and samples with a sign-preserving multiplicative update obtained
from the reverse-time SDE in log space (the Lamperti transform), the "Dale-Langevin" sampler,
which has the form of exponentiated gradient descent ``w <- w * exp(-eta grad L)``.

Equations (``*``, ``exp`` and ``log`` elementwise):

* Forward GBM, ambient space: ``dX = X * f(log X, t) dt + g(t) X * dW``. By Ito's lemma
  ``Y = log X`` obeys ``dY = (f - g^2 / 2) dt + g dW`` (the Lamperti transform turns the
  multiplicative noise into additive noise). We take the drift so that the standardised log
  ``U = (log X - mu) / s`` is the variance-preserving Ornstein-Uhlenbeck process
  ``dU = -beta(t) U / 2 dt + sqrt(beta(t)) dW`` with the DDPM schedule, so the perturbation kernel
  is log-normal: ``U_t = sqrt(abar_t) U_0 + sqrt(1 - abar_t) eps``, i.e.

      x_t = x_0 ** sqrt(abar_t) * exp((1 - sqrt(abar_t)) mu + s sqrt(1 - abar_t) eps)      (gbm_forward)

  multiplicative noise, and ``x_T`` is log-normal ``exp(mu + s N(0, I))``.
* Hyvaerinen score and the log-space score: with ``p_Y(y) = p_X(e^y) e^y``,
  ``grad_y log p_Y = x * grad_x log p_X(x) + 1``. For the kernel above the M-DSM target is

      h(x_t | x_0) = x_t * grad log q(x_t | x_0) = -eps / (s sqrt(1 - abar_t)) - 1            (hyvarinen_target)

  and an epsilon network parameterises ``h_theta(x_t, t) = -eps_theta(u_t, t) / (s sqrt(1 - abar_t)) - 1``.
* M-DSM: ``L = E_{t, x_0, eps} lambda(t) || h_theta(x_t, t) - h(x_t | x_0) ||^2``; the paper proves it
  equals the multiplicative explicit score-matching loss up to a constant. With
  ``lambda(t) = s^2 (1 - abar_t)`` (DDPM's weighting) it is exactly the epsilon-MSE in log space.
* Reverse-time SDE in log space and the Dale-Langevin update: ``dU = [-beta U / 2 - beta grad_u log p_t]
  dt + sqrt(beta) dW_bar`` with ``grad_u log p_t(u) = s (h(x) + 1)``. We discretise it with the same
  ancestral (DDPM eq. 7 posterior) coefficients the additive baseline uses, ``u' = c_0 u0_hat +
  c_t u + sigma z``, and write it in the ambient space as one multiplicative step

      x_{t'} = x_t * exp(s (u' - u))   (sample_dale_langevin)

  which never changes a sign: every iterate is positive whatever the network outputs (to first
  order in beta this is ``x * exp(s[beta u / 2 + beta s (h_theta + 1)] + s sqrt(beta) z)``, the
  paper's Euler-Maruyama/EGD form).

Equivalence (what the tests check): with ``lambda(t) = s^2 (1 - abar_t)`` the M-DSM loss on ``x`` is
the additive DDPM epsilon-MSE on ``u = to_log(x)`` (same draws), and the Dale-Langevin sampler is
``from_log`` of the additive ancestral sampler run on ``u`` (same noise): the multiplicative model
is an additive diffusion in (standardised) log space, and its samples ``exp(mu + s u)`` are positive
whatever ``u`` is. A clip box of the scheduler (``clip_sample``) bounds the log-space estimate
``u0_hat`` to ``[-clip, clip]``, i.e. ``x0_hat`` to ``[exp(mu - s clip), exp(mu + s clip)]``
(``clip = 1``: ``[offset, 1 + offset]``); it bounds the estimate, never the sign.

Departures from the paper: an MLP on 8x8 digits (pixels shifted by a stated offset to be strictly
positive) instead of a U-Net on MNIST-like images; a mean-reverting (OU) drift in log space with a
standardisation ``(mu, s)`` so the terminal law is a fixed log-normal and the schedule equals the
additive baseline's; the ancestral rather than Euler-Maruyama discretisation (same first-order
update, and the additive DDPM uses the same coefficients, so the arms differ only in geometry).
The sign-agnostic ambient-space sampler and the mirrored-Langevin connection are not implemented.
On 8x8 digits with a short-trained MLP both the additive and the multiplicative ancestral samplers
diverge without an x0 clip (the multiplicative one overflows ``exp``), so the experiment clips
``u0_hat`` to ``[-1, 1]``; the paper's samplers are unclipped.

Example:
    >>> import torch
    >>> tr = LogTransform(offset=0.1)
    >>> x0 = torch.tensor([[0.1, 0.6, 1.1]])
    >>> tuple(round(v, 4) for v in tr.to_log(x0)[0].tolist())
    (-1.0, 0.4944, 1.0)
    >>> xt = gbm_forward(x0, torch.tensor(0.5), torch.zeros(1, 3), tr)
    >>> bool((xt > 0).all())
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["LogTransform", "gbm_forward", "hyvarinen_target", "hyvarinen_from_eps", "mdsm_loss",
           "sample_dale_langevin"]


@dataclass(frozen=True)
class LogTransform:
    """``u = (log x - mu) / s`` mapping ``[offset, 1 + offset]`` (shifted pixels) onto ``[-1, 1]``.

    ``mu`` and ``s`` are the midpoint and half-width of ``[log offset, log(1 + offset)]``.
    """

    offset: float = 0.1

    @property
    def mu(self) -> float:
        return 0.5 * (math.log(self.offset) + math.log1p(self.offset))

    @property
    def s(self) -> float:
        return 0.5 * (math.log1p(self.offset) - math.log(self.offset))

    def to_log(self, x: torch.Tensor) -> torch.Tensor:
        return (x.log() - self.mu) / self.s

    def from_log(self, u: torch.Tensor) -> torch.Tensor:
        return (u * self.s + self.mu).exp()


def _abar(abar: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    a = torch.as_tensor(abar, dtype=like.dtype, device=like.device)
    return a.reshape(-1, *([1] * (like.ndim - 1))) if a.ndim else a


def gbm_forward(x0: torch.Tensor, abar: torch.Tensor | float, eps: torch.Tensor, tr: LogTransform) -> torch.Tensor:
    """``x_t = x_0 ** sqrt(abar) * exp((1 - sqrt(abar)) mu + s sqrt(1 - abar) eps)`` (the log-normal kernel)."""
    a = _abar(abar, x0)
    return x0.pow(a.sqrt()) * torch.exp((1 - a.sqrt()) * tr.mu + tr.s * (1 - a).sqrt() * eps)


def hyvarinen_target(xt: torch.Tensor, x0: torch.Tensor, abar: torch.Tensor | float, tr: LogTransform) -> torch.Tensor:
    """``x_t * grad_{x_t} log q(x_t | x_0) = -(u_t - sqrt(abar) u_0) / (s (1 - abar)) - 1``."""
    a = _abar(abar, xt)
    return -(tr.to_log(xt) - a.sqrt() * tr.to_log(x0)) / (tr.s * (1 - a)) - 1.0


def hyvarinen_from_eps(eps: torch.Tensor, abar: torch.Tensor | float, tr: LogTransform) -> torch.Tensor:
    """``h = -eps / (s sqrt(1 - abar)) - 1``: the Hyvaerinen score an epsilon prediction stands for."""
    a = _abar(abar, eps)
    return -eps / (tr.s * (1 - a).sqrt()) - 1.0


def mdsm_loss(model: nn.Module, scheduler, x0: torch.Tensor, c: torch.Tensor, tr: LogTransform, *,
              p_uncond: float = 0.1, weighted: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """The multiplicative denoising score-matching loss on positive ``x0`` (mean over the batch).

    ``E lambda(t) || h_theta(x_t, t, c') - x_t * grad log q(x_t | x_0) ||^2`` with ``x_t`` from
    :func:`gbm_forward`, ``h_theta`` from the network's epsilon output on ``u_t = to_log(x_t)``,
    ``c' = null`` with probability ``p_uncond`` (label dropout, as the additive recipe), and
    ``lambda(t) = s^2 (1 - abar_t)`` when ``weighted`` (else 1). Random draws are made in the same
    order as :func:`zoo.diffusion.classifier_free_guidance_loss` (labels, t, eps).
    """
    from zoo.diffusion.classifier_free_guidance import drop_labels

    c_in = drop_labels(c, p_uncond, model.null_class, generator)
    t = scheduler.sample_timesteps(x0.shape[0], device=x0.device, generator=generator)
    gen_device = generator.device if generator is not None else x0.device
    eps = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=x0.dtype).to(x0.device)
    abar = scheduler.alphas_cumprod.to(x0.device)[t].to(x0.dtype)
    xt = gbm_forward(x0, abar, eps, tr)
    h_hat = hyvarinen_from_eps(model(tr.to_log(xt), t, c_in), abar, tr)
    h = hyvarinen_target(xt, x0, abar, tr)
    lam = (tr.s ** 2) * (1 - _abar(abar, x0)) if weighted else torch.ones_like(_abar(abar, x0))
    return (lam * (h_hat - h).pow(2)).mean()


@torch.no_grad()
def sample_dale_langevin(scheduler, eps_fn: Callable[[torch.Tensor, int], torch.Tensor], z0: torch.Tensor,
                         tr: LogTransform, generator: torch.Generator | None = None) -> torch.Tensor:
    """The sign-preserving multiplicative sampler; returns positive samples ``x_0``.

    Starts at the log-normal ``x_T = from_log(z0)`` (``z0`` standard normal) and applies
    ``x <- x * exp(s (u' - u))`` over ``scheduler.timesteps``, where ``u = to_log(x)`` and
    ``u' = scheduler.step(eps_fn(u, t), t, u)`` is the ancestral reverse step of the log-space
    OU process (the scheduler's clip box, if any, applies to ``u0_hat``). ``eps_fn(u, t)`` is the
    epsilon network on the log input. The fresh noise comes from ``generator`` in the order the
    additive :func:`zoo.diffusion.sample` draws it, so equal generators give equal noise.
    """
    x = tr.from_log(z0)
    for t in [int(t) for t in scheduler.timesteps]:
        u = tr.to_log(x)
        u_next = scheduler.step(eps_fn(u, t), t, u, generator=generator).prev_sample
        x = x * torch.exp(tr.s * (u_next - u))  # the multiplicative (Dale / EGD-form) update
    return x
