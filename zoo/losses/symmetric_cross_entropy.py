"""Symmetric cross-entropy (SCE) and its reverse cross-entropy (RCE) term.

Yisen Wang, Xingjun Ma, Zaiyi Chen, Yuan Luo, Jinfeng Yi, James Bailey. *Symmetric Cross
Entropy for Robust Learning with Noisy Labels*. ICCV 2019. https://arxiv.org/abs/1908.06112

Cross-entropy ``H(q, p) = -sum_k q_k log p_k`` with the one-hot label ``q`` and the prediction
``p``; the *reverse* cross-entropy swaps them, ``H(p, q) = -sum_k p_k log q_k``. ``log 0`` is
undefined, so the paper truncates it to a constant ``A < 0`` (``A = -4`` in all its
experiments), which makes RCE a scaled MAE (their Eq. 6-7)::

    RCE(f(x), y) = -sum_{k != y} p_k * A = -A (1 - p_y)
    SCE          = alpha * CE + beta * RCE

RCE is symmetric (``sum_j RCE(f(x), j) = -A (K - 1)``, a constant), hence robust to symmetric
label noise in the sense of Ghosh et al. (2017); CE supplies the fitting power. The paper's
MNIST setting is ``alpha = 0.01, beta = 1``. ``1 - p_y`` is computed as the summed non-target
probabilities (no cancellation for confident predictions; ``-inf`` logits contribute 0).

Departure from the authors' code: it clamps the one-hot label at ``1e-4`` before the log, so
its effective ``A`` is ``log(1e-4) = -9.21``; ``log_zero`` defaults to the paper's ``-4``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.losses._base import WeightedLoss, flatten_classes, reduce_loss

__all__ = ["reverse_cross_entropy", "symmetric_cross_entropy", "ReverseCrossEntropyLoss",
           "SymmetricCrossEntropyLoss", "one_minus_p_target"]


def one_minus_p_target(x: Tensor, safe_target: Tensor) -> Tensor:
    """``1 - p_y`` per row of ``(M, C)`` logits, summed over the other classes (full precision)."""
    p = F.softmax(x, dim=-1)
    onehot = F.one_hot(safe_target, x.shape[-1]).bool()
    return p.masked_fill(onehot, 0.0).sum(-1)


def _flat(input: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor, Tensor]:
    x, t = flatten_classes(input, target)
    safe = torch.where(t == ignore_index, torch.zeros_like(t), t)
    return x, t, safe


def reverse_cross_entropy(input: Tensor, target: Tensor, log_zero: float = -4.0, weight: Tensor | None = None,
                          ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """``-A (1 - p_y)``: the reverse cross-entropy ``-sum_k p_k log q_k`` with ``log 0 = A`` (SCE Eq. 6)."""
    if log_zero >= 0:
        raise ValueError(f"log_zero (the paper's A) must be negative, got {log_zero}")
    x, t, safe = _flat(input, target, ignore_index)
    per = -log_zero * one_minus_p_target(x, safe)
    return reduce_loss(per, t, weight, ignore_index, reduction, target.shape)


def symmetric_cross_entropy(input: Tensor, target: Tensor, alpha: float = 0.1, beta: float = 1.0,
                            log_zero: float = -4.0, weight: Tensor | None = None, ignore_index: int = -100,
                            reduction: str = "mean") -> Tensor:
    """``alpha * CE + beta * RCE`` (SCE Eq. 7); MNIST in the paper: ``alpha = 0.01, beta = 1``."""
    if log_zero >= 0:
        raise ValueError(f"log_zero (the paper's A) must be negative, got {log_zero}")
    x, t, safe = _flat(input, target, ignore_index)
    ce = -F.log_softmax(x, dim=-1).gather(1, safe.unsqueeze(1)).squeeze(1)
    per = alpha * ce + beta * (-log_zero) * one_minus_p_target(x, safe)
    return reduce_loss(per, t, weight, ignore_index, reduction, target.shape)


class ReverseCrossEntropyLoss(WeightedLoss):
    """Module form of :func:`reverse_cross_entropy`."""

    def __init__(self, log_zero: float = -4.0, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(weight, ignore_index, reduction)
        if log_zero >= 0:
            raise ValueError(f"log_zero (the paper's A) must be negative, got {log_zero}")
        self.log_zero = float(log_zero)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return reverse_cross_entropy(input, target, self.log_zero, self.weight, self.ignore_index, self.reduction)


class SymmetricCrossEntropyLoss(WeightedLoss):
    """Module form of :func:`symmetric_cross_entropy`."""

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, log_zero: float = -4.0, weight: Tensor | None = None,
                 ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(weight, ignore_index, reduction)
        if log_zero >= 0:
            raise ValueError(f"log_zero (the paper's A) must be negative, got {log_zero}")
        self.alpha, self.beta, self.log_zero = float(alpha), float(beta), float(log_zero)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return symmetric_cross_entropy(input, target, self.alpha, self.beta, self.log_zero, self.weight,
                                       self.ignore_index, self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, log_zero={self.log_zero}, " + super().extra_repr()


def _cases() -> tuple:
    from zoo.losses.registry import LossCase

    return (
        LossCase("reverse_cross_entropy", ReverseCrossEntropyLoss, {}, reverse_cross_entropy),
        LossCase("symmetric_cross_entropy", SymmetricCrossEntropyLoss, {"alpha": 0.01, "beta": 1.0},
                 symmetric_cross_entropy),
    )


LOSS_CASES = _cases()
