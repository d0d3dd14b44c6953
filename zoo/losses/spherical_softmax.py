"""Spherical-family alternatives to the softmax: the Taylor softmax and the spherical softmax, with their log-losses.

Alexandre de Brébisson, Pascal Vincent. *An Exploration of Softmax Alternatives Belonging to the
Spherical Loss Family*. ICLR 2016. https://arxiv.org/abs/1511.05042

The baselines of the Z-loss paper (:mod:`zoo.losses.z_loss`). Both replace ``exp`` in the softmax
by a positive function of each score alone, so that the normaliser depends only on ``sum_k o_k``
and ``sum_k o_k^2`` (the spherical family)::

    Taylor softmax:     p_c = (1 + o_c + o_c^2 / 2) / sum_k (1 + o_k + o_k^2 / 2)
    spherical softmax:  p_c = (o_c^2 + eps) / sum_k (o_k^2 + eps)

``1 + o + o^2/2`` (the second-order Taylor expansion of ``exp``) is always ``>= 1/2``. The losses
are their negative log-likelihoods, ``-log p_c`` (the log-Taylor-softmax and log-spherical-softmax
of the papers). Conventions as :func:`torch.nn.functional.cross_entropy`. Departures (ours): a
``-inf`` logit marks an absent class and gets probability 0 (its term leaves the normaliser; the
formulas themselves would give it an infinite one).
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.losses._base import WeightedLoss, check_reduction, flatten_classes, reduce_loss

__all__ = ["taylor_softmax", "spherical_softmax", "log_taylor_softmax_loss", "log_spherical_softmax_loss",
           "LogTaylorSoftmaxLoss", "LogSphericalSoftmaxLoss"]


def _taylor_terms(x: Tensor) -> Tensor:
    finite = torch.isfinite(x)
    x0 = torch.where(finite, x, torch.zeros_like(x))
    return torch.where(finite, 1 + x0 + 0.5 * x0 * x0, torch.zeros_like(x0))


def _spherical_terms(x: Tensor, eps: float) -> Tensor:
    finite = torch.isfinite(x)
    x0 = torch.where(finite, x, torch.zeros_like(x))
    return torch.where(finite, x0 * x0 + eps, torch.zeros_like(x0))


def taylor_softmax(input: Tensor, dim: int = -1) -> Tensor:
    """``(1 + o + o^2/2) / sum(1 + o + o^2/2)`` along ``dim``."""
    f = _taylor_terms(input)
    return f / f.sum(dim, keepdim=True)


def spherical_softmax(input: Tensor, dim: int = -1, eps: float = 0.01) -> Tensor:
    """``(o^2 + eps) / sum(o^2 + eps)`` along ``dim``."""
    f = _spherical_terms(input, eps)
    return f / f.sum(dim, keepdim=True)


def _nll(terms: Tensor, target: Tensor, t: Tensor, weight: Tensor | None, ignore_index: int, reduction: str,
         shape: torch.Size) -> Tensor:
    safe = torch.where(t != ignore_index, t, torch.zeros_like(t))
    per = terms.sum(1).log() - terms.gather(1, safe[:, None]).squeeze(1).log()
    return reduce_loss(per, t, weight, ignore_index, reduction, shape)


def log_taylor_softmax_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                            reduction: str = "mean") -> Tensor:
    """``-log`` of the Taylor softmax of the target class."""
    check_reduction(reduction)
    x, t = flatten_classes(input, target)
    return _nll(_taylor_terms(x), target, t, weight, ignore_index, reduction, target.shape)


def log_spherical_softmax_loss(input: Tensor, target: Tensor, eps: float = 0.01, weight: Tensor | None = None,
                               ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """``-log`` of the spherical softmax of the target class (``eps > 0`` keeps it finite at ``o_c = 0``)."""
    check_reduction(reduction)
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    x, t = flatten_classes(input, target)
    return _nll(_spherical_terms(x, eps), target, t, weight, ignore_index, reduction, target.shape)


class LogTaylorSoftmaxLoss(WeightedLoss):
    """Module form of :func:`log_taylor_softmax_loss`."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return log_taylor_softmax_loss(input, target, self.weight, self.ignore_index, self.reduction)


class LogSphericalSoftmaxLoss(WeightedLoss):
    """Module form of :func:`log_spherical_softmax_loss`."""

    def __init__(self, eps: float = 0.01, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(weight, ignore_index, reduction)
        self.eps = float(eps)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return log_spherical_softmax_loss(input, target, self.eps, self.weight, self.ignore_index, self.reduction)


def _cases() -> tuple:
    from zoo.losses.registry import LossCase

    return (
        LossCase("log_taylor_softmax_loss", LogTaylorSoftmaxLoss, {}, log_taylor_softmax_loss),
        LossCase("log_spherical_softmax_loss", LogSphericalSoftmaxLoss, {"eps": 0.1}, log_spherical_softmax_loss),
    )


LOSS_CASES = _cases()
