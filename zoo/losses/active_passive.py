"""Active Passive Loss (APL): a robust *active* loss plus a robust *passive* loss.

Xingjun Ma, Hanxun Huang, Yisen Wang, Simone Romano, Sarah Erfani, James Bailey. *Normalized
Loss Functions for Deep Learning with Noisy Labels*. ICML 2020. https://arxiv.org/abs/2006.13554

The paper writes a loss as ``L(f(x), y) = sum_k l(f(x), k)`` and calls it *active* when only the
labelled class's term is non-zero (CE, FL, and their normalised forms NCE, NFL: they push
``p_y`` up) and *passive* when terms of other classes are non-zero too (MAE, RCE: they also push
the other ``p_k`` down). Robust losses of one kind alone underfit; APL (their Eq. 6) adds one
of each, both robust::

    L_APL = alpha * L_active + beta * L_passive

with the passive losses (``A < 0`` the truncated ``log 0`` of reverse cross-entropy)::

    MAE(f(x), y) = sum_k |p_k - onehot(y)_k| = 2 (1 - p_y)
    RCE(f(x), y) = -sum_k p_k log onehot(y)_k = -A (1 - p_y)

This module gives the paper's combinations NCE+RCE, NCE+MAE, NFL+RCE and NFL+MAE (and MAE on
its own), built from :mod:`zoo.losses.normalized_losses` and
:mod:`zoo.losses.symmetric_cross_entropy`. The authors' MNIST configs use ``alpha = 1,
beta = 10`` and ``gamma = 0.5`` (NFL).

Departures from the authors' code, which follows the paper's maths up to constants: their MAE is
the "reduced" ``1 - p_y`` (half the paper's ``2 (1 - p_y)``) and their RCE's effective ``A``
is ``log(1e-4) = -9.21`` (a clamped one-hot), against the paper's ``A = -4``; here both follow
the paper's equations (``log_zero`` is configurable).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from zoo.losses._base import WeightedLoss, flatten_classes, reduce_loss
from zoo.losses.normalized_losses import cross_entropy_matrix, focal_loss_matrix, normalized_loss
from zoo.losses.symmetric_cross_entropy import one_minus_p_target

__all__ = ["mean_absolute_error", "active_passive_loss", "nce_rce", "nce_mae", "nfl_rce", "nfl_mae",
           "MeanAbsoluteErrorLoss", "ActivePassiveLoss", "ACTIVE", "PASSIVE"]


def _nce(x: Tensor, safe: Tensor, gamma: float) -> Tensor:
    m, avail = cross_entropy_matrix(x)
    return normalized_loss(m, safe, avail)


def _nfl(x: Tensor, safe: Tensor, gamma: float) -> Tensor:
    m, avail = focal_loss_matrix(x, gamma)
    return normalized_loss(m, safe, avail)


def _mae(x: Tensor, safe: Tensor, log_zero: float) -> Tensor:
    return 2.0 * one_minus_p_target(x, safe)


def _rce(x: Tensor, safe: Tensor, log_zero: float) -> Tensor:
    return -log_zero * one_minus_p_target(x, safe)


ACTIVE: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {"nce": _nce, "nfl": _nfl}
"""Per-element active losses on ``(M, C)`` logits and safe targets: name -> fn(x, y, gamma)."""
PASSIVE: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {"mae": _mae, "rce": _rce}
"""Per-element passive losses: name -> fn(x, y, log_zero)."""


def mean_absolute_error(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                        reduction: str = "mean") -> Tensor:
    """MAE ``sum_k |p_k - onehot(y)_k| = 2 (1 - p_y)`` (a passive, symmetric loss)."""
    x, t = flatten_classes(input, target)
    safe = torch.where(t == ignore_index, torch.zeros_like(t), t)
    return reduce_loss(_mae(x, safe, -4.0), t, weight, ignore_index, reduction, target.shape)


def active_passive_loss(input: Tensor, target: Tensor, active: str = "nce", passive: str = "rce",
                        alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.5, log_zero: float = -4.0,
                        weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """``alpha * active + beta * passive`` (Ma et al. 2020, Eq. 6).

    Args:
        active: ``"nce"`` (normalised cross-entropy) or ``"nfl"`` (normalised focal loss, ``gamma``).
        passive: ``"rce"`` (reverse cross-entropy with ``log 0 = log_zero``) or ``"mae"``.
        alpha, beta: the weights of the two terms.
        weight, ignore_index, reduction: as in :func:`torch.nn.functional.cross_entropy`.
    """
    if active not in ACTIVE:
        raise ValueError(f"active must be one of {sorted(ACTIVE)}, got {active!r}")
    if passive not in PASSIVE:
        raise ValueError(f"passive must be one of {sorted(PASSIVE)}, got {passive!r}")
    if log_zero >= 0:
        raise ValueError(f"log_zero (the paper's A) must be negative, got {log_zero}")
    x, t = flatten_classes(input, target)
    safe = torch.where(t == ignore_index, torch.zeros_like(t), t)
    per = alpha * ACTIVE[active](x, safe, gamma) + beta * PASSIVE[passive](x, safe, log_zero)
    return reduce_loss(per, t, weight, ignore_index, reduction, target.shape)


def nce_rce(input: Tensor, target: Tensor, alpha: float = 1.0, beta: float = 1.0, log_zero: float = -4.0,
            **kw: object) -> Tensor:
    """NCE+RCE, the paper's headline APL loss."""
    return active_passive_loss(input, target, "nce", "rce", alpha, beta, log_zero=log_zero, **kw)  # type: ignore[arg-type]


def nce_mae(input: Tensor, target: Tensor, alpha: float = 1.0, beta: float = 1.0, **kw: object) -> Tensor:
    """NCE+MAE."""
    return active_passive_loss(input, target, "nce", "mae", alpha, beta, **kw)  # type: ignore[arg-type]


def nfl_rce(input: Tensor, target: Tensor, alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.5,
            log_zero: float = -4.0, **kw: object) -> Tensor:
    """NFL+RCE."""
    return active_passive_loss(input, target, "nfl", "rce", alpha, beta, gamma, log_zero, **kw)  # type: ignore[arg-type]


def nfl_mae(input: Tensor, target: Tensor, alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.5,
            **kw: object) -> Tensor:
    """NFL+MAE."""
    return active_passive_loss(input, target, "nfl", "mae", alpha, beta, gamma, **kw)  # type: ignore[arg-type]


class MeanAbsoluteErrorLoss(WeightedLoss):
    """Module form of :func:`mean_absolute_error`."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return mean_absolute_error(input, target, self.weight, self.ignore_index, self.reduction)


class ActivePassiveLoss(WeightedLoss):
    """Module form of :func:`active_passive_loss`: ``ActivePassiveLoss("nce", "rce", alpha=1, beta=10)``."""

    def __init__(self, active: str = "nce", passive: str = "rce", alpha: float = 1.0, beta: float = 1.0,
                 gamma: float = 0.5, log_zero: float = -4.0, weight: Tensor | None = None,
                 ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(weight, ignore_index, reduction)
        if active not in ACTIVE or passive not in PASSIVE:
            raise ValueError(f"active must be one of {sorted(ACTIVE)} and passive one of {sorted(PASSIVE)}")
        if log_zero >= 0:
            raise ValueError(f"log_zero (the paper's A) must be negative, got {log_zero}")
        self.active, self.passive = active, passive
        self.alpha, self.beta, self.gamma, self.log_zero = float(alpha), float(beta), float(gamma), float(log_zero)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return active_passive_loss(input, target, self.active, self.passive, self.alpha, self.beta, self.gamma,
                                   self.log_zero, self.weight, self.ignore_index, self.reduction)

    def extra_repr(self) -> str:
        return (f"{self.active}+{self.passive}, alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, "
                f"log_zero={self.log_zero}, " + super().extra_repr())


def _cases() -> tuple:
    from zoo.losses.registry import LossCase

    return (
        LossCase("mean_absolute_error", MeanAbsoluteErrorLoss, {}, mean_absolute_error),
        LossCase("nce_rce", ActivePassiveLoss, {"active": "nce", "passive": "rce", "alpha": 1.0, "beta": 10.0},
                 active_passive_loss),
        LossCase("nce_mae", ActivePassiveLoss, {"active": "nce", "passive": "mae", "alpha": 1.0, "beta": 10.0},
                 active_passive_loss),
        LossCase("nfl_rce", ActivePassiveLoss, {"active": "nfl", "passive": "rce", "alpha": 1.0, "beta": 10.0},
                 active_passive_loss),
    )


LOSS_CASES = _cases()
