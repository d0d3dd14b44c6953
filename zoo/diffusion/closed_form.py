"""Closed-form and smoothed closed-form diffusion models (Scarvelis, Borde & Solomon, TMLR 2025).

The paper works with the straight-line interpolant between noise and data,
``x_t = t x_1 + (1 - t) x_0`` with ``x_0 ~ N(0, I)`` and ``x_1`` a training point, ``t`` running
from 0 (noise) to 1 (data). For the empirical distribution of ``N`` training points ``x^(i)`` the
perturbed density ``rho_t`` is a Gaussian mixture with means ``t x^(i)`` and variance ``(1-t)^2``,
whose score is known in closed form:

    k_t(x)  = sum_i softmax_i( -|x - t x^(i)|^2 / (2 (1 - t)^2) ) * t x^(i)
    s_t(x)  = (k_t(x) - x) / (1 - t)^2                                    (closed-form score)

and the probability-flow velocity of the interpolant is

    v_t(x)  = (x + (1 - t) s_t(x)) / t .

Integrating ``dx/dt = v_t(x)`` from noise lands exactly on training points (it memorises). The
paper's sigma-CFDM smooths the score by averaging its weighted-mean term over Gaussian
perturbations of the query point:

    s_t^sigma(x) = E_{z ~ N(0, I)} [ k_t(x + sigma z) - x ] / (1 - t)^2 ,

estimated with ``M`` Monte Carlo draws; its samples flow to barycenters of nearby training
points (Proposition 1 / Theorem 1), i.e. novel points. Sampling is the Euler scheme
``x <- x + h v_t(x)`` on a uniform grid of ``t`` (the first step at ``t = t_min``, not 0).

The paper accelerates ``k_t`` with a nearest-neighbour (DEANN-style) estimator: the softmax is
restricted to the ``K`` nearest training points of the query (plus ``L`` random ones with an
importance correction). :func:`weighted_mean` offers the ``K``-nearest truncation only (``knn``);
the ``L`` random extra points are not implemented (a departure, stated in the spec).

Example:
    >>> import torch
    >>> data = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    >>> x = sample_cfdm(data, 4, steps=50, sigma=0.0, generator=torch.Generator().manual_seed(0))
    >>> tuple(x.shape)
    (4, 2)
"""

from __future__ import annotations

import torch

__all__ = ["weighted_mean", "closed_form_score", "smoothed_score", "velocity", "sample_cfdm"]


def weighted_mean(x: torch.Tensor, t: float, data: torch.Tensor, knn: int | None = None) -> torch.Tensor:
    """``k_t(x) = sum_i softmax_i(-|x - t x^(i)|^2 / (2 (1-t)^2)) t x^(i)`` for a batch ``x`` (n, d).

    ``knn``: keep only the ``knn`` largest logits per query (the nearest training points), the
    paper's nearest-neighbour estimator without its random extra points.
    """
    means = t * data                                            # (N, d)
    logits = -torch.cdist(x, means).pow(2) / (2.0 * (1.0 - t) ** 2)  # (n, N)
    if knn is not None and knn < data.shape[0]:
        top, idx = logits.topk(int(knn), dim=1)
        w = torch.softmax(top, dim=1)                           # (n, K)
        return torch.einsum("nk,nkd->nd", w, means[idx])
    return torch.softmax(logits, dim=1) @ means


def closed_form_score(x: torch.Tensor, t: float, data: torch.Tensor, knn: int | None = None) -> torch.Tensor:
    """The exact score of ``rho_t`` for the empirical distribution: ``(k_t(x) - x) / (1 - t)^2``."""
    return (weighted_mean(x, t, data, knn) - x) / (1.0 - t) ** 2


def smoothed_score(x: torch.Tensor, t: float, data: torch.Tensor, sigma: float, m: int = 1,
                   generator: torch.Generator | None = None, knn: int | None = None) -> torch.Tensor:
    """``s_t^sigma(x) = mean_j (k_t(x + sigma z_j) - x) / (1 - t)^2`` over ``m`` draws ``z_j ~ N(0, I)``.

    ``sigma = 0`` is the closed-form score (no draws are made).
    """
    if sigma == 0.0:
        return closed_form_score(x, t, data, knn)
    acc = torch.zeros_like(x)
    for _ in range(int(m)):
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        acc = acc + weighted_mean(x + sigma * z, t, data, knn)
    return (acc / int(m) - x) / (1.0 - t) ** 2


def velocity(x: torch.Tensor, t: float, data: torch.Tensor, sigma: float = 0.0, m: int = 1,
             generator: torch.Generator | None = None, knn: int | None = None) -> torch.Tensor:
    """The probability-flow velocity ``v_t(x) = (x + (1 - t) s_t^sigma(x)) / t``."""
    s = smoothed_score(x, t, data, sigma, m, generator, knn)
    return (x + (1.0 - t) * s) / t


@torch.no_grad()
def sample_cfdm(data: torch.Tensor, n: int, *, steps: int = 100, sigma: float = 0.0, m: int = 1,
                generator: torch.Generator | None = None, knn: int | None = None, t_min: float = 1e-3,
                x0: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` samples by Euler integration of ``v_t`` over ``t_k = k / steps`` (``t_0 = t_min``), k < steps.

    ``x0`` (n, d) replaces the initial noise ``N(0, I)`` drawn from ``generator``. Returns ``x_1``.
    """
    d = data.shape[1]
    x = torch.randn(n, d, generator=generator, dtype=data.dtype) if x0 is None else x0.clone()
    x = x.to(data.device)
    h = 1.0 / int(steps)
    for k in range(int(steps)):
        t = max(k * h, t_min)
        x = x + h * velocity(x, t, data, sigma, m, generator, knn)
    return x
