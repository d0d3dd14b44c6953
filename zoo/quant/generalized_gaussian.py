"""Generalized-Gaussian (GG) weight priors: sampler, initialisation and a DeepShape-style shape penalty.

After Wu, Huang, Wen & Han, "It Takes a Good Model to Train a Good Model: Generalized Gaussian
Priors for Optimized LLMs" (arXiv:2506.00486) and the BackSlash shape estimator it builds on.

**Density** (shape ``beta > 0``, scale ``alpha > 0``)::

    p(w) = beta / (2 alpha Gamma(1/beta)) * exp(-(|w| / alpha)^beta)

``beta = 2`` is the Gaussian (``alpha = sqrt(2) sigma``), ``beta = 1`` the Laplacian. Moments::

    E[w^2] = alpha^2 Gamma(3/beta) / Gamma(1/beta)
    E|w|   = alpha   Gamma(2/beta) / Gamma(1/beta)
    rho(beta) = (E|w|)^2 / E[w^2] = Gamma(2/beta)^2 / (Gamma(1/beta) Gamma(3/beta))

``rho`` is scale-free and increasing in ``beta`` (0.5 at ``beta=1``, 2/pi at ``beta=2``), the
statistic BackSlash inverts to estimate a tensor's shape.

**Sampler** (:func:`gg_sample`): with ``G ~ Gamma(1/beta, 1)`` and an independent random sign ``s``,
``w = s * alpha * G^(1/beta)`` has the density above (``|w/alpha|^beta ~ Gamma(1/beta, 1)``).

**Initialisation** (:func:`gg_init_`): every Linear/Conv weight drawn from the GG of shape ``beta``
with the variance of He initialisation, ``Var w = xi / fan_in`` (``xi = 2`` for ReLU, 1 for none),
i.e. ``alpha = sqrt(xi / fan_in * Gamma(1/beta) / Gamma(3/beta))``; ``beta = 2`` is He-normal.
Biases are set to zero. (The authors' ``gg_init`` uses ``param.shape[0]``, the fan-out of a
Linear, as ``n``; we use fan-in, the usual He convention — a stated departure.)

**Shape penalty** (:func:`shape_penalty`, our DeepShape-style regulariser): for each weight tensor
``W`` the empirical ``rho_hat(W) = mean(|W|)^2 / mean(W^2)``, and::

    R(W) = (rho_hat(W) - rho(beta))^2,        loss = CE + lam * sum_layers R(W_l)

a differentiable, scale-free pull of each layer's weight histogram toward a GG of shape ``beta``.
The paper's DeepShape is a post-training histogram-reshaping step (the authors borrow histogram
matching from image processing) followed by fine-tuning; we use this moment-matching penalty during
training instead — a departure: one differentiable term, no histogram matching.

The paper's RF8 8-bit float format is not implemented; the experiment stores the weights with the
library's symmetric per-channel uniform integer codes (:func:`zoo.quant.post_training_quantize`).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

__all__ = ["gg_alpha", "gg_rho", "gg_sample", "gg_init_", "empirical_rho", "shape_penalty", "weights_of"]


def gg_alpha(beta: float, std: float) -> float:
    """The scale ``alpha`` of a GG of shape ``beta`` whose standard deviation is ``std``."""
    return std * math.sqrt(math.gamma(1.0 / beta) / math.gamma(3.0 / beta))


def gg_rho(beta: float) -> float:
    """``(E|w|)^2 / E[w^2]`` of a GG of shape ``beta`` (scale-free)."""
    return math.gamma(2.0 / beta) ** 2 / (math.gamma(1.0 / beta) * math.gamma(3.0 / beta))


def gg_sample(shape: tuple[int, ...] | torch.Size, beta: float, std: float = 1.0,
              generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Draw a tensor of i.i.d. zero-mean GG(``beta``) values with standard deviation ``std``.

    ``|w/alpha|^beta ~ Gamma(1/beta, 1)``, times an independent random sign. The gamma draw uses
    ``torch._standard_gamma`` with the given generator's state (``torch.distributions`` ignores
    generators), so the draw is reproducible from the seeded global RNG or ``generator``.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    shape = torch.Size(shape)
    conc = torch.full(shape, 1.0 / beta, dtype=torch.float64)
    if generator is None:
        g = torch._standard_gamma(conc)
        sign = torch.randint(0, 2, shape, dtype=torch.float64) * 2 - 1
    else:
        # _standard_gamma takes no generator: seed a local stream from it
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            g = torch._standard_gamma(conc)
            sign = torch.randint(0, 2, shape, dtype=torch.float64) * 2 - 1
    w = sign * gg_alpha(beta, std) * g.pow(1.0 / beta)
    return w.to(dtype)


def weights_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's Linear and Conv2d layers (the layers initialised and shaped)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


@torch.no_grad()
def gg_init_(model: nn.Module, beta: float = 2.0, xi: float = 2.0, generator: torch.Generator | None = None) -> nn.Module:
    """Re-initialise every Linear/Conv2d weight of ``model`` from GG(``beta``) with ``Var = xi / fan_in``; zero biases."""
    for _, m in weights_of(model):
        w = m.weight
        fan_in = w[0].numel()
        std = math.sqrt(xi / fan_in)
        w.copy_(gg_sample(w.shape, beta, std, generator=generator, dtype=w.dtype).to(w.device))
        if m.bias is not None:
            m.bias.zero_()
    return model


def empirical_rho(w: torch.Tensor) -> torch.Tensor:
    """``mean(|w|)^2 / mean(w^2)`` of a tensor (differentiable, scale-free)."""
    return w.abs().mean().pow(2) / w.pow(2).mean().clamp_min(1e-30)


def shape_penalty(weights: Iterable[torch.Tensor], beta: float) -> torch.Tensor:
    """``sum_l (rho_hat(W_l) - rho(beta))^2``: pulls every tensor's histogram toward a GG of shape ``beta``."""
    target = gg_rho(beta)
    terms = [(empirical_rho(w) - target).pow(2) for w in weights]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()
