"""Normalized losses: any classification loss made robust to label noise by normalising over labels.

Xingjun Ma, Hanxun Huang, Yisen Wang, Simone Romano, Sarah Erfani, James Bailey. *Normalized
Loss Functions for Deep Learning with Noisy Labels*. ICML 2020. https://arxiv.org/abs/2006.13554

Notation: ``K`` classes, ``p = softmax(f(x))``, ``L(f(x), j)`` a loss of the prediction against
label ``j``. The normalised loss (their Eq. 3) is::

    L_norm(f(x), y) = L(f(x), y) / sum_{j=1}^{K} L(f(x), j)

so that ``sum_j L_norm(f(x), j) = 1`` for every ``x``: a *symmetric* loss, which (Ghosh et al.
2017; the paper's Lemma 1 / Theorem 1) is noise-tolerant under symmetric label noise with
``eta < (K - 1) / K``, and under asymmetric noise given a zero-risk minimum. The two the paper
trains with:

* normalised cross-entropy (Eq. 4): ``NCE = log p_y / sum_j log p_j``;
* normalised focal loss (Eq. 5): ``NFL = (1 - p_y)^g log p_y / sum_j (1 - p_j)^g log p_j``.

Normalised losses on their own are robust but underfit; the paper pairs them with a *passive*
loss (:mod:`zoo.losses.active_passive`). :func:`normalized_loss` normalises any matrix of
per-label losses.

Conventions: :func:`torch.nn.functional.cross_entropy`'s (any batch shape, per-class ``weight``
applied to the normalised per-element loss, ``ignore_index``, ``reduction``). A class whose logit
is ``-inf`` (masked) is not a possible label: it is left out of the normalising sum (its loss
would be ``+inf`` and zero every ratio).

Departure from the authors' code: their focal term detaches the modulating factor
``(1 - p_j)^g`` (a legacy ``Variable(x.data)`` idiom); here the focal loss is differentiated in
full, as the paper writes it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.losses._base import WeightedLoss, flatten_classes, reduce_loss

__all__ = ["normalized_loss", "normalized_cross_entropy", "normalized_focal_loss", "cross_entropy_matrix",
           "focal_loss_matrix", "NormalizedCrossEntropyLoss", "NormalizedFocalLoss"]


def _safe_log_softmax(x: Tensor) -> tuple[Tensor, Tensor]:
    """``log_softmax`` with masked (``-inf``) classes set to 0, and the mask of available classes."""
    logp = F.log_softmax(x, dim=-1)
    avail = ~torch.isneginf(x)
    return torch.where(avail, logp, torch.zeros_like(logp)), avail


def cross_entropy_matrix(x: Tensor) -> tuple[Tensor, Tensor]:
    """``L[i, j] = -log p_ij`` for ``(M, C)`` logits (0 on masked classes) and the availability mask."""
    logp, avail = _safe_log_softmax(x)
    return -logp, avail


def focal_loss_matrix(x: Tensor, gamma: float) -> tuple[Tensor, Tensor]:
    """``L[i, j] = -(1 - p_ij)^gamma log p_ij`` (Lin et al.'s focal loss against every label)."""
    logp, avail = _safe_log_softmax(x)
    if gamma == 0:
        return -logp, avail
    # 1 - p = -expm1(log p) keeps precision near p = 1; the floor keeps the gradient of
    # (1 - p)^gamma (gamma < 1) finite when 1 - p underflows to 0
    one_minus = (-torch.expm1(logp)).clamp_min(torch.finfo(x.dtype).tiny)
    return -one_minus.pow(gamma) * logp, avail


def normalized_loss(loss_matrix: Tensor, target: Tensor, available: Tensor | None = None) -> Tensor:
    """``L[i, y_i] / sum_j L[i, j]`` (the paper's Eq. 3) for an ``(M, C)`` matrix of per-label losses.

    ``available`` (bool ``(M, C)``) restricts the normalising sum to the possible labels.
    """
    if available is not None:
        loss_matrix = torch.where(available, loss_matrix, torch.zeros_like(loss_matrix))
    num = loss_matrix.gather(1, target.unsqueeze(1)).squeeze(1)
    return num / loss_matrix.sum(-1)


def _normalized(matrix: Tensor, avail: Tensor, t: Tensor, target: Tensor, weight: Tensor | None,
                ignore_index: int, reduction: str) -> Tensor:
    safe = torch.where(t == ignore_index, torch.zeros_like(t), t)
    return reduce_loss(normalized_loss(matrix, safe, avail), t, weight, ignore_index, reduction, target.shape)


def normalized_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                             reduction: str = "mean") -> Tensor:
    """NCE, ``log p_y / sum_j log p_j`` (Ma et al. 2020, Eq. 4), in ``[0, 1]``."""
    x, t = flatten_classes(input, target)
    m, avail = cross_entropy_matrix(x)
    return _normalized(m, avail, t, target, weight, ignore_index, reduction)


def normalized_focal_loss(input: Tensor, target: Tensor, gamma: float = 0.5, weight: Tensor | None = None,
                          ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """NFL, ``(1 - p_y)^g log p_y / sum_j (1 - p_j)^g log p_j`` (Eq. 5); ``gamma = 0`` is NCE.

    The paper's APL experiments use ``gamma = 0.5``.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    x, t = flatten_classes(input, target)
    m, avail = focal_loss_matrix(x, gamma)
    return _normalized(m, avail, t, target, weight, ignore_index, reduction)


class NormalizedCrossEntropyLoss(WeightedLoss):
    """Module form of :func:`normalized_cross_entropy`."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return normalized_cross_entropy(input, target, self.weight, self.ignore_index, self.reduction)


class NormalizedFocalLoss(WeightedLoss):
    """Module form of :func:`normalized_focal_loss`."""

    def __init__(self, gamma: float = 0.5, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(weight, ignore_index, reduction)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return normalized_focal_loss(input, target, self.gamma, self.weight, self.ignore_index, self.reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, " + super().extra_repr()


def _cases() -> tuple:
    from zoo.losses.registry import LossCase

    return (
        LossCase("normalized_cross_entropy", NormalizedCrossEntropyLoss, {}, normalized_cross_entropy),
        LossCase("normalized_focal_loss", NormalizedFocalLoss, {"gamma": 0.5}, normalized_focal_loss),
    )


LOSS_CASES = _cases()
