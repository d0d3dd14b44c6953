"""Generalized cross-entropy (GCE): a noise-robust interpolation between cross-entropy and MAE.

Zhilu Zhang, Mert R. Sabuncu. *Generalized Cross Entropy Loss for Training Deep Neural Networks
with Noisy Labels*. NeurIPS 2018. https://arxiv.org/abs/1805.07836

With ``p_y`` the softmax probability of the labelled class, the ``L_q`` loss (their Eq. 6) is::

    L_q(f(x), y) = (1 - p_y^q) / q,        0 < q <= 1

``q -> 0`` recovers cross-entropy ``-log p_y`` (L'Hopital), ``q = 1`` is ``1 - p_y``, i.e. half
the MAE ``sum_k |p_k - onehot_k|``. The paper's default is ``q = 0.7``. Its gradient is the
cross-entropy gradient weighted by ``p_y^q``, so examples the model disagrees with (often the
mislabelled ones) are down-weighted. The truncated variant (``L_trunc``, pruning examples with
``p_y <= k``) is not implemented here.

Conventions: those of :func:`torch.nn.functional.cross_entropy` (any batch shape, per-class
``weight``, ``ignore_index``, ``reduction``); ``p_y`` is computed as ``exp(log_softmax)``, so
``-inf`` (masked) logits are safe.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.losses._base import WeightedLoss, flatten_classes, reduce_loss

__all__ = ["generalized_cross_entropy", "GeneralizedCrossEntropyLoss"]


def generalized_cross_entropy(input: Tensor, target: Tensor, q: float = 0.7, weight: Tensor | None = None,
                              ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """``(1 - p_y^q) / q`` (Zhang & Sabuncu 2018, Eq. 6); ``q -> 0`` is cross-entropy.

    Args:
        input: logits ``(N, C)``, ``(C,)`` or ``(N, C, d1, ...)``.
        target: class indices ``(N,)``, ``()`` or ``(N, d1, ...)``.
        q: the exponent, in ``[0, 1]``; ``0`` is computed as cross-entropy exactly.
        weight, ignore_index, reduction: as in :func:`torch.nn.functional.cross_entropy`.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    x, t = flatten_classes(input, target)
    safe = torch.where(t == ignore_index, torch.zeros_like(t), t)
    logp_y = F.log_softmax(x, dim=-1).gather(1, safe.unsqueeze(1)).squeeze(1)
    if q == 0.0:
        per = -logp_y
    else:
        # (1 - exp(q log p_y)) / q = -expm1(q log p_y) / q: no cancellation when p_y^q is near 1
        per = -torch.expm1(q * logp_y) / q
    return reduce_loss(per, t, weight, ignore_index, reduction, target.shape)


class GeneralizedCrossEntropyLoss(WeightedLoss):
    """Module form of :func:`generalized_cross_entropy`."""

    def __init__(self, q: float = 0.7, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(weight, ignore_index, reduction)
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q}")
        self.q = float(q)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return generalized_cross_entropy(input, target, self.q, self.weight, self.ignore_index, self.reduction)

    def extra_repr(self) -> str:
        return f"q={self.q}, " + super().extra_repr()


def _cases() -> tuple:
    from zoo.losses.registry import LossCase

    return (LossCase("generalized_cross_entropy", GeneralizedCrossEntropyLoss, {"q": 0.7}, generalized_cross_entropy),)


LOSS_CASES = _cases()
