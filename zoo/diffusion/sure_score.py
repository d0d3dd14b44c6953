"""SURE-Score (Aali, Arvinte, Kumar & Tamir, 2023): score-based priors learned from noisy data only.

Paper: "Solving Inverse Problems with Score-Based Generative Priors learned from Noisy Data",
https://arxiv.org/abs/2305.01166.

Training data are ``y = x + sigma_w n`` (additive white Gaussian noise of known ``sigma_w``); no
clean ``x`` is seen. One noise-conditional score network ``s_theta(., sigma)`` plays two roles:

* **the denoiser** through Tweedie's rule at the data's own noise level,
  ``h_theta(y) = y + sigma_w^2 s_theta(y, sigma_w)``, trained with Stein's unbiased risk estimate,
  which needs no clean target:

  .. math::

      \\mathrm{SURE}(h; y) = \\|y - h(y)\\|^2 - d\\,\\sigma_w^2 + 2\\sigma_w^2\\,\\nabla_y \\cdot h(y),
      \\qquad \\mathbb E\\,\\mathrm{SURE} = \\mathbb E \\|h(y) - x\\|^2,

  with the divergence by the Monte-Carlo estimate of Ramani et al. (2008)
  ``div h(y) ~ b^T (h(y + eps b) - h(y)) / eps``, ``b ~ N(0, I)`` (:func:`divergence_mc`);
* **the prior** through denoising score matching on the denoised samples ``x_hat = h_theta(y)``,
  ``DSM = E_{sigma, z} || sigma s_theta(x_hat + sigma z, sigma) + z ||^2`` over a geometric ladder
  of ``sigma`` (:func:`dsm_loss`).

The loss is ``SURE + lambda DSM`` (:func:`sure_score_loss`). The learned prior is used for inverse
problems ``meas = A x + w`` by annealed Langevin posterior sampling (Jalal et al. 2021;
:func:`annealed_langevin_posterior`):
``x <- x + alpha_i [s(x, sigma_i) + A^T (meas - A x) / (sigma_meas^2 + sigma_i^2)] + sqrt(2 alpha_i) z``,
``alpha_i = step_lr sigma_i^2`` (Song & Ermon's ``eps sigma_i^2 / sigma_L^2``).

Notation (code -> paper): ``y`` -> y (noisy training sample), ``sigma_w`` -> sigma_w, ``h`` -> the
MMSE denoiser, ``eps`` -> the finite-difference step of the divergence estimate, ``lam`` -> lambda.

Departures (stated): a small MLP over low-dimensional vectors (the paper: NCSNv2 on MIMO channels
and MRI); ``detach_denoised=True`` (default) stops DSM's gradient from flowing into the denoised
samples (DSM alone is minimised by collapsing them to a point; the paper trains jointly and does not
say how it handles this); ``sigma`` of DSM drawn uniformly on the log-ladder per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "NoiseConditionalScore",
    "annealed_langevin_posterior",
    "divergence_mc",
    "dsm_loss",
    "geometric_sigmas",
    "sure",
    "sure_score_loss",
    "tweedie_denoiser",
]


class NoiseConditionalScore(nn.Module):
    """``s(x, sigma) = net([x, log sigma]) / sigma``: a noise-conditional score MLP (NCSN-style output scaling)."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = dim + 1
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)
        self.dim = dim

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
        return self.net(torch.cat([x, s.log()], dim=1)) / s


def geometric_sigmas(sigma_max: float, sigma_min: float, n: int) -> torch.Tensor:
    """``n`` noise levels from ``sigma_max`` down to ``sigma_min``, evenly spaced in log."""
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), n))


def tweedie_denoiser(score: nn.Module, sigma_w: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """``h(y) = y + sigma_w^2 s(y, sigma_w)``: the MMSE denoiser at the data's noise level (Tweedie)."""
    return lambda y: y + sigma_w ** 2 * score(y, sigma_w)


def divergence_mc(f: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, eps: float,
                  generator: torch.Generator | None = None, fy: torch.Tensor | None = None) -> torch.Tensor:
    """Monte-Carlo divergence ``b^T (f(y + eps b) - f(y)) / eps`` per row, ``b ~ N(0, I)``: ``(N, d) -> (N,)``.

    Unbiased for ``div f`` as ``eps -> 0`` (exact for affine ``f``): ``E[b b^T] = I``.
    """
    b = torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device) if generator is not None \
        else torch.randn_like(y)
    fy = f(y) if fy is None else fy
    return (b * (f(y + eps * b) - fy)).sum(dim=1) / eps


def sure(f: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, sigma_w: float, eps: float | None = None,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """SURE of the denoiser ``f`` on noisy rows ``y`` (per row, summed over the ``d`` coordinates).

    ``||y - f(y)||^2 - d sigma_w^2 + 2 sigma_w^2 div f(y)``; its mean over ``y`` is an unbiased
    estimate of the MSE ``E||f(y) - x||^2`` without ``x``. ``eps`` defaults to ``1e-3 sigma_w``.
    """
    d = y.shape[1]
    fy = f(y)
    div = divergence_mc(f, y, eps if eps is not None else 1e-3 * sigma_w, generator, fy=fy)
    return (y - fy).pow(2).sum(dim=1) - d * sigma_w ** 2 + 2 * sigma_w ** 2 * div


def dsm_loss(score: nn.Module, x: torch.Tensor, sigmas: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising score matching ``E || sigma s(x + sigma z, sigma) + z ||^2`` (sigma per row from ``sigmas``), mean over coordinates."""
    kw = {"generator": generator} if generator is not None else {}
    idx = torch.randint(len(sigmas), (x.shape[0],), **kw)
    sig = sigmas[idx].to(x.device, x.dtype)[:, None]
    z = torch.randn(x.shape, dtype=x.dtype, **kw).to(x.device)
    return (sig * score(x + sig * z, sig[:, 0]) + z).pow(2).mean()


def sure_score_loss(score: nn.Module, y: torch.Tensor, sigma_w: float, sigmas: torch.Tensor, lam: float = 1.0,
                    eps: float | None = None, detach_denoised: bool = True,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """SURE-Score: ``SURE(h_theta; y) / d + lam * DSM(s_theta; h_theta(y))`` with ``h_theta = y + sigma_w^2 s_theta(y, sigma_w)``."""
    h = tweedie_denoiser(score, sigma_w)
    d = y.shape[1]
    fy = h(y)
    div = divergence_mc(h, y, eps if eps is not None else 1e-3 * sigma_w, generator, fy=fy)
    sure_term = ((y - fy).pow(2).sum(1) - d * sigma_w ** 2 + 2 * sigma_w ** 2 * div).mean() / d
    x_hat = fy.detach() if detach_denoised else fy
    return sure_term + lam * dsm_loss(score, x_hat, sigmas, generator)


@torch.no_grad()
def annealed_langevin_posterior(score: nn.Module, A: torch.Tensor, meas: torch.Tensor, sigma_meas: float,
                                sigmas: torch.Tensor, steps_per_level: int, step_lr: float,
                                generator: torch.Generator, x_init: torch.Tensor | None = None) -> torch.Tensor:
    """Posterior samples of ``x`` given ``meas = A x + w`` (``A`` of shape ``(N, m, d)`` or ``(m, d)``), one per row.

    Annealed Langevin dynamics over ``sigmas`` (decreasing) with the prior score ``score(x, sigma)``
    and the noise-annealed likelihood score ``A^T (meas - A x) / (sigma_meas^2 + sigma^2)``.
    """
    n = meas.shape[0]
    d = A.shape[-1]
    A = A.expand(n, *A.shape[-2:]) if A.ndim == 2 else A
    x = x_init if x_init is not None else sigmas[0] * torch.randn(n, d, generator=generator, dtype=meas.dtype)
    for s in sigmas.tolist():
        alpha = step_lr * s ** 2  # Song & Ermon's eps sigma_i^2 / sigma_L^2 with eps = step_lr sigma_L^2
        for _ in range(steps_per_level):
            resid = meas - torch.einsum("nmd,nd->nm", A, x)
            lik = torch.einsum("nmd,nm->nd", A, resid) / (sigma_meas ** 2 + s ** 2)
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + alpha * (score(x, s) + lik) + math.sqrt(2 * alpha) * z
    return x
