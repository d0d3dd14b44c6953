"""AnyLoss: any confusion-matrix metric of a binary classifier as a differentiable loss.

Doheon Han, Nuno Moniz, Nitesh V. Chawla. *AnyLoss: Transforming Classification Metrics into
Loss Functions*. KDD 2024. https://arxiv.org/abs/2405.14745 (authors' TensorFlow code:
https://github.com/doheonhan/anyloss; nothing copied from it).

Notation (code name -> paper symbol): ``p`` the model's probability of the positive class
(the sigmoid output, ``y_hat`` in the paper), ``a`` the *amplified* probability ``A(p)``,
``L`` (``amplify``) the amplifying scale, ``y`` the 0/1 label.

The approximation function (paper Eq. 2) pushes each probability towards 0 or 1 while keeping
a non-zero gradient::

    A(p) = 1 / (1 + exp(-L (p - 1/2)))          (L = 73 in the paper)

and the confusion matrix is built from the amplified probabilities (Eq. 3), so each entry is a
smooth function of the model outputs::

    TN = sum (1 - y)(1 - a)      FN = sum y (1 - a)
    FP = sum (1 - y) a           TP = sum y a

Any confusion-matrix metric ``M(TP, FN, FP, TN)`` then gives the loss ``1 - M`` (Eq. 4-8):
accuracy ``(TP + TN) / n``; F-beta ``(1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP)``; geometric
mean ``sqrt(TP / (TP + FN) * TN / (TN + FP))``; balanced accuracy
``(TP / (TP + FN) + TN / (TN + FP)) / 2``. With hard 0/1 values of ``a`` each loss is exactly one
minus the metric.

The loss is a *batch-level* quantity (the confusion matrix of the mini-batch): there is no
per-element ``reduction``. Inputs are *logits* ``z`` of any shape with 0/1 targets of the same
shape (``p = sigmoid(z)``, numerically stable for any finite ``z``); elements whose target is
``ignore_index`` are left out of the confusion matrix. For a two-logit (softmax) model use the
logit difference ``z_1 - z_0``, whose sigmoid is the softmax probability of class 1.

Departures: the paper writes the metric rates with plain divisions; here a rate whose
denominator is empty in the mini-batch (no positive, or no negative, example) is 0 rather than
``nan`` (``TP / max(TP + FN, tiny)``), and the geometric mean's square root is taken of the
product clamped at ``tiny`` so its gradient stays finite. Neither changes any value where the
paper's formula is defined (up to ``tiny``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn

from zoo.losses.registry import LossCase

__all__ = [
    "Confusion",
    "amplify",
    "soft_confusion",
    "anyloss",
    "anyloss_accuracy",
    "anyloss_f_beta",
    "anyloss_gmean",
    "anyloss_balanced_accuracy",
    "AnyLoss",
    "METRICS",
]

DEFAULT_L = 73.0
_TINY = 1e-12


class Confusion(NamedTuple):
    """The soft confusion matrix of a batch (sums of amplified probabilities)."""

    tp: Tensor
    fn: Tensor
    fp: Tensor
    tn: Tensor


def amplify(p: Tensor, L: float = DEFAULT_L) -> Tensor:
    """The approximation function ``A(p) = sigmoid(L (p - 1/2))`` (paper Eq. 2)."""
    if L <= 0:
        raise ValueError(f"the amplifying scale L must be positive, got {L}")
    return torch.sigmoid(L * (p - 0.5))


def soft_confusion(input: Tensor, target: Tensor, L: float = DEFAULT_L, ignore_index: int = -100) -> Confusion:
    """TP, FN, FP, TN of logits ``input`` against 0/1 ``target`` through ``A(sigmoid(z))`` (Eq. 3)."""
    if input.shape != target.shape:
        raise ValueError(f"input {tuple(input.shape)} and target {tuple(target.shape)} must have the same shape")
    keep = target != ignore_index
    a = amplify(torch.sigmoid(input), L)
    y = torch.where(keep, target, torch.zeros_like(target)).to(a.dtype)
    k = keep.to(a.dtype)
    pos, neg = y * k, (1.0 - y) * k
    return Confusion(tp=(pos * a).sum(), fn=(pos * (1.0 - a)).sum(), fp=(neg * a).sum(), tn=(neg * (1.0 - a)).sum())


def _rate(num: Tensor, den: Tensor) -> Tensor:
    return num / den.clamp_min(_TINY)


def _accuracy(c: Confusion) -> Tensor:
    return _rate(c.tp + c.tn, c.tp + c.fn + c.fp + c.tn)


def _f_beta(beta: float) -> Callable[[Confusion], Tensor]:
    b2 = float(beta) ** 2

    def metric(c: Confusion) -> Tensor:
        return _rate((1.0 + b2) * c.tp, (1.0 + b2) * c.tp + b2 * c.fn + c.fp)

    return metric


def _gmean(c: Confusion) -> Tensor:
    return (_rate(c.tp, c.tp + c.fn) * _rate(c.tn, c.tn + c.fp)).clamp_min(_TINY).sqrt()


def _balanced_accuracy(c: Confusion) -> Tensor:
    return 0.5 * (_rate(c.tp, c.tp + c.fn) + _rate(c.tn, c.tn + c.fp))


METRICS: dict[str, Callable[[Confusion], Tensor]] = {
    "accuracy": _accuracy,
    "f1": _f_beta(1.0),
    "gmean": _gmean,
    "balanced_accuracy": _balanced_accuracy,
}
"""The paper's four metrics by name; ``f_beta`` takes its ``beta`` (see :func:`anyloss`)."""


def _metric_fn(metric: str | Callable[[Confusion], Tensor], beta: float) -> Callable[[Confusion], Tensor]:
    if callable(metric):
        return metric
    if metric == "f_beta":
        return _f_beta(beta)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: use one of {[*METRICS, 'f_beta']} or a callable")
    return METRICS[metric]


def anyloss(input: Tensor, target: Tensor, metric: str | Callable[[Confusion], Tensor] = "f1", beta: float = 1.0,
            L: float = DEFAULT_L, ignore_index: int = -100) -> Tensor:
    """``1 - M(TP, FN, FP, TN)`` of the batch's soft confusion matrix (paper Eq. 4).

    Args:
        input: logits of the positive class, any shape.
        target: 0/1 labels, same shape (``ignore_index`` elements are left out).
        metric: ``"accuracy"``, ``"f1"``, ``"f_beta"`` (with ``beta``), ``"gmean"``,
            ``"balanced_accuracy"``, or any callable of a :class:`Confusion` returning the metric.
        beta: the F-beta weight of recall (``metric="f_beta"`` only).
        L: the amplifying scale of :func:`amplify` (the paper's 73 by default).

    Returns:
        A scalar loss in [0, 1] for the built-in metrics.
    """
    return 1.0 - _metric_fn(metric, beta)(soft_confusion(input, target, L, ignore_index))


def anyloss_accuracy(input: Tensor, target: Tensor, L: float = DEFAULT_L, ignore_index: int = -100) -> Tensor:
    """AnyLoss for accuracy, ``1 - (TP + TN) / n`` (paper Eq. 5)."""
    return anyloss(input, target, "accuracy", L=L, ignore_index=ignore_index)


def anyloss_f_beta(input: Tensor, target: Tensor, beta: float = 1.0, L: float = DEFAULT_L, ignore_index: int = -100) -> Tensor:
    """AnyLoss for F-beta, ``1 - (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP)`` (paper Eq. 6)."""
    return anyloss(input, target, "f_beta", beta=beta, L=L, ignore_index=ignore_index)


def anyloss_gmean(input: Tensor, target: Tensor, L: float = DEFAULT_L, ignore_index: int = -100) -> Tensor:
    """AnyLoss for the geometric mean of the true-positive and true-negative rates (paper Eq. 7)."""
    return anyloss(input, target, "gmean", L=L, ignore_index=ignore_index)


def anyloss_balanced_accuracy(input: Tensor, target: Tensor, L: float = DEFAULT_L, ignore_index: int = -100) -> Tensor:
    """AnyLoss for balanced accuracy, the mean of the two class recalls (paper Eq. 8)."""
    return anyloss(input, target, "balanced_accuracy", L=L, ignore_index=ignore_index)


class AnyLoss(nn.Module):
    """AnyLoss: ``1 - metric`` of the mini-batch's amplified confusion matrix (see :func:`anyloss`).

    Example:
        >>> crit = AnyLoss("f_beta", beta=2.0)
        >>> loss = crit(torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1, 0, 0]))
        >>> bool(0 <= loss <= 1)
        True
    """

    def __init__(self, metric: str | Callable[[Confusion], Tensor] = "f1", beta: float = 1.0, L: float = DEFAULT_L,
                 ignore_index: int = -100) -> None:
        super().__init__()
        _metric_fn(metric, beta)  # validate now
        amplify(torch.zeros(()), L)
        self.metric, self.beta, self.L, self.ignore_index = metric, float(beta), float(L), int(ignore_index)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return anyloss(input, target, self.metric, self.beta, self.L, self.ignore_index)

    def extra_repr(self) -> str:
        m = self.metric if isinstance(self.metric, str) else getattr(self.metric, "__name__", "custom")
        return f"metric={m!r}, beta={self.beta}, L={self.L}"


# Batch-level losses: no per-element reduction (decomposable=False), and no per-class `weight`
# (a confusion-matrix metric fixes how the classes count: F-beta, balanced accuracy...). Binary
# targets: the shared masked-logit, spatial and per-class tests address class-index inputs only.
LOSS_CASES = [
    LossCase(f"anyloss_{m}", AnyLoss, {"metric": m}, function=anyloss, target="binary", decomposable=False,
             weight=False, masked_logits=False, spatial=False)
    for m in ("accuracy", "f1", "gmean", "balanced_accuracy")
] + [
    LossCase("anyloss_f_beta2", AnyLoss, {"metric": "f_beta", "beta": 2.0}, function=anyloss, target="binary",
             decomposable=False, weight=False, masked_logits=False, spatial=False),
]
