"""f-distill: one-step diffusion distillation by f-divergence distribution matching (Xu et al., 2025).

"One-step Diffusion Models with f-Divergence Distribution Matching", Yilun Xu, Weili Nie and Arash
Vahdat, https://arxiv.org/abs/2502.15681 (project page https://research.nvidia.com/labs/genair/f-distill).

A one-step generator ``x = G_θ(z)`` (distribution ``q``) is trained so that its noised marginals
``q_t`` match the teacher diffusion model's ``p_t`` in an f-divergence
``D_f(p || q) = E_q[f(p/q)]``. With ``x_t = α_t x + σ_t ε`` and the density ratio
``r_t(x_t) = p_t(x_t) / q_t(x_t)``, the paper's Theorem (eq. 6 there) gives the gradient

.. math::

    \\nabla_\\theta D_f(p_t \\| q_t)
      = \\mathbb{E}_{z, \\epsilon}\\Bigl[\\, h\\bigl(r_t(x_t)\\bigr)\\,
        \\bigl(s_q(x_t, t) - s_p(x_t, t)\\bigr)^\\top \\frac{\\partial x_t}{\\partial \\theta} \\Bigr],
    \\qquad h(r) = f''(r)\\, r^2 ,

the score difference of variational score distillation (DMD) weighted by ``h`` of the ratio.
``s_p`` is the teacher's score, ``s_q`` a "fake" score network trained by denoising score matching
on the generator's samples (:func:`fake_score_loss`), and ``log r_t`` the logit of a discriminator
``D(x_t, t)`` trained with the GAN (logistic) loss, teacher/real samples labelled 1 and generated
ones 0 (:func:`discriminator_loss`): at its optimum ``D = p/(p+q)``, so its logit is ``log r``.

Weightings ``h`` (:data:`WEIGHTINGS`, the paper's Table 1):

* reverse KL, ``f = -log r``: ``h = 1`` (DMD / VSD, mode-seeking);
* forward KL, ``f = r log r``: ``h = r`` (mode-covering: up-weights where the teacher has more mass);
* Jensen-Shannon, ``f = r log r - (1 + r) log((1 + r)/2)``: ``h = r / (1 + r)``;
* squared Hellinger, ``f = (√r - 1)²``: ``h = √r / 2``;
* Jeffreys (forward + reverse KL): ``h = r + 1``.

As in the paper, the weights are normalised by their batch mean (``normalize=True``) so every
divergence takes steps of the same size and only the *relative* weighting differs; with reverse KL
this is exactly DMD. :func:`generator_loss` is a surrogate whose gradient in ``θ`` is the formula
above (the weighted score difference is a constant, ``stop_gradient``, times ``x_t``), optionally
times a time weighting ``w_t``.

Departures: the paper also adds a GAN loss on the generator (from the same discriminator) and uses
the teacher's network features for the discriminator head; this module provides the divergence
gradient, the fake-score loss and the discriminator loss as separate pieces, and a caller may add
a GAN term itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

__all__ = [
    "WEIGHTINGS",
    "f_weight",
    "generator_loss",
    "fake_score_loss",
    "discriminator_loss",
]


def _h_reverse_kl(log_r: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(log_r)


def _h_forward_kl(log_r: torch.Tensor) -> torch.Tensor:
    return log_r.exp()


def _h_js(log_r: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(log_r)  # r / (1 + r)


def _h_hellinger(log_r: torch.Tensor) -> torch.Tensor:
    return 0.5 * (0.5 * log_r).exp()


def _h_jeffreys(log_r: torch.Tensor) -> torch.Tensor:
    return log_r.exp() + 1.0


#: ``name -> h(r)`` as a function of ``log r`` (``h(r) = f''(r) r²``).
WEIGHTINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "reverse_kl": _h_reverse_kl,
    "forward_kl": _h_forward_kl,
    "js": _h_js,
    "squared_hellinger": _h_hellinger,
    "jeffreys": _h_jeffreys,
}


def f_weight(log_r: torch.Tensor, divergence: str, normalize: bool = True, clamp: float = 20.0) -> torch.Tensor:
    """``h(r)`` from ``log r`` (clamped to ``±clamp``), divided by its batch mean when ``normalize``; no gradient."""
    if divergence not in WEIGHTINGS:
        raise ValueError(f"unknown divergence {divergence!r}; use one of {sorted(WEIGHTINGS)}")
    with torch.no_grad():
        h = WEIGHTINGS[divergence](log_r.clamp(-clamp, clamp))
        if normalize:
            h = h / h.mean().clamp(min=1e-12)
    return h


def generator_loss(
    x_t: torch.Tensor,
    score_teacher: torch.Tensor,
    score_fake: torch.Tensor,
    log_r: torch.Tensor,
    divergence: str,
    time_weight: torch.Tensor | float = 1.0,
    normalize: bool = True,
) -> torch.Tensor:
    """Surrogate with ``∇_θ = mean_i w_t h(r_i) (s_q - s_p)_i · ∂x_t,i/∂θ`` (the f-distill gradient).

    ``x_t`` carries the graph to the generator; the scores and ``log r`` are treated as constants.
    """
    h = f_weight(log_r.reshape(-1), divergence, normalize=normalize)
    w = torch.as_tensor(time_weight, dtype=x_t.dtype, device=x_t.device).reshape(-1)
    grad = (w.unsqueeze(-1) * h.unsqueeze(-1) * (score_fake - score_teacher).reshape(x_t.shape[0], -1)).detach()
    return (grad * x_t.reshape(x_t.shape[0], -1)).sum(-1).mean()


def fake_score_loss(score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor,
                    abar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising score matching of ``s_q`` on generated ``x0`` (detached): ``E||σ_t s_q(x_t, t) + ε||²``.

    ``abar`` is ᾱ_t per row; ``x_t = √ᾱ x0 + √(1-ᾱ) ε``; ``score_fn(x_t, abar)`` predicts ``∇ log q_t``.
    """
    x0 = x0.detach()
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    a = abar.reshape(-1, 1).to(x0)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    return ((1 - a).sqrt() * score_fn(x_t, abar) + eps).pow(2).sum(-1).mean()


def discriminator_loss(logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
    """Logistic GAN loss, teacher/real noised samples labelled 1, generated 0: the optimal logit is ``log p_t/q_t``."""
    return F.softplus(-logit_real).mean() + F.softplus(logit_fake).mean()
