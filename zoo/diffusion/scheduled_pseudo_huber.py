"""Scheduled pseudo-Huber diffusion loss (Khrapov, Popov, Sadekova, Yermekova, Kudinov 2024, arXiv 2403.16728).

The epsilon-prediction objective of DDPM, ``E_{t, x0, eps} || eps - eps_theta(x_t, t) ||^2``, lets a
training outlier pull the model with a force growing linearly in its residual. The paper replaces
the squared norm by the pseudo-Huber loss

    H_delta(r) = delta^2 ( sqrt(1 + ||r||^2 / delta^2) - 1 ),        r = eps - eps_theta(x_t, t),

which is ``||r||^2 / 2`` for ``||r|| << delta`` (L2) and ``delta ||r||`` for ``||r|| >> delta`` (L1:
bounded gradient ``delta r / ||r||``), and makes ``delta`` a function of the diffusion time: small
(robust) at large ``t``, the early reverse steps where an outlier shifts the whole trajectory,
and large (L2-like, fine detail) at small ``t``. The exponential schedule (the authors' diffusers
implementation, ``huber_schedule="exponential"``) decays from ``delta_0`` at ``t = 0`` to
``delta_T`` at ``t = T``:

    delta(t) = delta_0 * (delta_T / delta_0) ** (t / T).

``delta_T = delta_0`` is the fixed-delta (unscheduled) pseudo-Huber loss; ``delta -> inf`` recovers
half the squared L2 (:func:`pseudo_huber` is multiplied by 2 in :func:`pseudo_huber_denoising_loss`
so the L2 limit is exactly the epsilon-MSE's sum ``||r||^2``, divided by the dimension like
``F.mse_loss``).

Departures: the paper (and diffusers) apply the loss element-wise on latent images (``||r||`` over a
single value); here ``norm="vector"`` (default) takes ``||r||`` over each sample's whole vector, as
in the paper's equation, and ``norm="element"`` is the element-wise variant. delta is in units of
the residual norm: for a ``d``-dimensional sample the L2 residual of a perfect model has
``||r|| ~ 0``, a pure-noise guess ``||r|| ~ sqrt(d)``; ``delta_scale="sqrt_dim"`` multiplies delta by
``sqrt(d)`` so one setting serves 2-D and 64-D data.

Example:
    >>> import torch
    >>> r = torch.tensor([[3.0, 4.0]])
    >>> round(float(pseudo_huber(r, torch.tensor([1.0]))), 4)  # 1 * (sqrt(1 + 25) - 1)
    4.099
    >>> tuple(round(float(v), 3) for v in exponential_delta(torch.tensor([0, 500, 1000]), 1000, 1.0, 0.01))
    (1.0, 0.1, 0.01)
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from zoo.diffusion.classifier_free_guidance import drop_labels

__all__ = ["exponential_delta", "pseudo_huber", "pseudo_huber_denoising_loss"]


def exponential_delta(t: torch.Tensor, num_timesteps: int, delta_0: float, delta_T: float) -> torch.Tensor:
    """``delta(t) = delta_0 (delta_T / delta_0)^(t / T)``: ``delta_0`` at t = 0, ``delta_T`` at t = T."""
    if delta_0 <= 0 or delta_T <= 0:
        raise ValueError(f"deltas must be positive, got {delta_0}, {delta_T}")
    frac = t.to(torch.float32) / float(num_timesteps)
    return delta_0 * torch.exp(frac * math.log(delta_T / delta_0))


def pseudo_huber(r: torch.Tensor, delta: torch.Tensor | float, norm: Literal["vector", "element"] = "vector") -> torch.Tensor:
    """``delta^2 (sqrt(1 + ||r||^2 / delta^2) - 1)`` per sample (rows of ``r``); ``delta`` a number or ``(N,)``.

    ``norm="element"`` applies it to each entry and sums over the row. Computed as
    ``||r||^2 / (sqrt(1 + ||r||^2/delta^2) + 1)`` (the same value, stable for large delta).
    """
    r = r.reshape(r.shape[0], -1)
    d = torch.as_tensor(delta, dtype=r.dtype, device=r.device)
    if norm == "vector":
        sq = r.pow(2).sum(1)
        d = d.expand(sq.shape)
        return sq / (torch.sqrt(1 + sq / d.pow(2)) + 1)
    if norm == "element":
        sq = r.pow(2)
        d = d.reshape(-1, 1) if d.ndim else d
        return (sq / (torch.sqrt(1 + sq / d.pow(2)) + 1)).sum(1)
    raise ValueError(f"unknown norm {norm!r}; use vector or element")


def pseudo_huber_denoising_loss(model: nn.Module, scheduler, x0: torch.Tensor, c: torch.Tensor, *,
                                delta_0: float, delta_T: float | None = None, p_uncond: float = 0.1,
                                norm: Literal["vector", "element"] = "vector",
                                delta_scale: Literal["none", "sqrt_dim"] = "sqrt_dim",
                                generator: torch.Generator | None = None) -> torch.Tensor:
    """The (scheduled) pseudo-Huber epsilon loss with label dropout, mean over the batch.

    ``2 H_{delta(t)}(eps - eps_theta(x_t, t, c')) / d`` with ``delta(t)`` from :func:`exponential_delta`
    (``delta_T`` None: fixed delta ``delta_0``), ``d`` the sample dimension; as delta grows it tends
    to the epsilon-MSE of :func:`~zoo.diffusion.classifier_free_guidance_loss` (same draws of t, eps,
    c' for the same generator state).
    """
    null = model.null_class
    c_in = drop_labels(c, p_uncond, null, generator)
    t = scheduler.sample_timesteps(x0.shape[0], device=x0.device, generator=generator)
    gen_device = generator.device if generator is not None else x0.device
    eps = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=x0.dtype).to(x0.device)
    xt = scheduler.add_noise(x0, eps, t)
    dim = x0[0].numel()
    T = scheduler.num_train_timesteps
    delta = exponential_delta(t, T, delta_0, delta_0 if delta_T is None else delta_T).to(x0.device)
    if delta_scale == "sqrt_dim":
        delta = delta * math.sqrt(dim)
    elif delta_scale != "none":
        raise ValueError(f"unknown delta_scale {delta_scale!r}")
    r = eps - model(xt, t, c_in)
    return (2.0 * pseudo_huber(r, delta, norm) / dim).mean()
