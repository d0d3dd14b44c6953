"""Squentropy: cross-entropy plus the mean squared logit of the wrong classes; and the rescaled square loss.

Like Hui, Mikhail Belkin, Stephen Wright. *Cut your Losses with Squentropy*. ICML 2023.
https://arxiv.org/abs/2302.03952

Like Hui, Mikhail Belkin. *Evaluation of Neural Architectures Trained with Square Loss vs
Cross-Entropy in Classification Tasks*. ICLR 2021. https://arxiv.org/abs/2006.07322

Notation: ``f`` are the logits of one example (``f_j``, ``j = 1..C``), ``y`` its class, ``p =
softmax(f)``. Squentropy (Hui, Belkin & Wright 2023, the definition of Section 2) is the sum of
cross-entropy and the average square loss over the ``C - 1`` incorrect classes::

    l_sqen(f, y) = -log p_y + 1/(C - 1) * sum_{j != y} f_j^2

It has no parameter of its own: the square term pulls the wrong-class logits to 0 (the target of
the square loss for a wrong class) while the cross-entropy term pushes the true logit up.

The rescaled square loss (Hui & Belkin 2021, Section 3) regresses the one-hot vector, with the true
class's term scaled by ``k`` and its target raised to ``M``; the paper averages the ``C`` terms::

    l_sq(f, y) = 1/C * ( k (f_y - M)^2 + sum_{j != y} f_j^2 )

``k = M = 1`` is plain mean square error on the one-hot labels; Hui & Belkin use ``k = M = 1``
for up to about 40 classes (MNIST, CIFAR-10) and larger values with many classes (ImageNet,
``k = 15``, ``M = 30``).

Conventions as :func:`torch.nn.functional.cross_entropy`: input ``(N, C)``, ``(C,)`` or ``(N, C,
d1, ...)``, class-index targets, per-class ``weight`` (weighting the whole per-element loss, and
``"mean"`` dividing by the summed weights), ``ignore_index``, ``reduction``; squentropy also takes
``label_smoothing``, which smooths its cross-entropy term exactly as torch does.

Departures (ours): a ``-inf`` logit marks a masked (absent) class. It has probability 0 in the
cross-entropy term and is left out of the square terms, which then average over the remaining
wrong classes (``1/(C' - 1)`` and ``1/C'`` with ``C'`` the number of finite logits); without
masked logits the formulas are the paper's exactly. With ``label_smoothing > 0`` a masked class
gets smoothing mass and the loss is infinite, as ``F.cross_entropy``'s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.losses._base import WeightedLoss, check_reduction, flatten_classes, reduce_loss

__all__ = ["squentropy_loss", "rescaled_square_loss", "SquentropyLoss", "RescaledSquareLoss"]


def _wrong_square_terms(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per row: the sum of squared finite wrong-class logits, the count of finite logits, the true logit.

    ``x`` is ``(M, C)``, ``t`` ``(M,)`` with valid class indices.
    """
    finite = torch.isfinite(x)
    is_true = F.one_hot(t, x.shape[1]).bool()
    wrong = finite & ~is_true
    # where, not multiply: a masked logit is -inf and its square must not reach the sum (or the gradient)
    sq = torch.where(wrong, x, torch.zeros_like(x)).pow(2).sum(1)
    f_true = x.gather(1, t[:, None]).squeeze(1)
    return sq, finite.sum(1).to(x.dtype), f_true


def squentropy_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                    reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Squentropy, ``-log p_y + 1/(C-1) sum_{j != y} f_j^2`` (Hui, Belkin & Wright 2023, Section 2).

    Arguments are those of :func:`torch.nn.functional.cross_entropy` (class-index targets only);
    ``label_smoothing`` applies to the cross-entropy term, ``weight`` to the whole per-element loss.

    Example:
        >>> import torch
        >>> x = torch.tensor([[2.0, 0.0, 1.0]]); y = torch.tensor([0])
        >>> round(float(squentropy_loss(x, y)), 4)  # CE 0.4076 + (0 + 1) / 2
        0.9076
    """
    check_reduction(reduction)
    if target.is_floating_point():
        raise ValueError("squentropy_loss takes class-index targets")
    shape = target.shape
    x, t = flatten_classes(input, target)
    valid = t != ignore_index
    safe = torch.where(valid, t, torch.zeros_like(t))
    ce = F.cross_entropy(x, safe, reduction="none", label_smoothing=label_smoothing)
    sq, n_finite, _ = _wrong_square_terms(x, safe)
    per = ce + sq / (n_finite - 1).clamp_min(1)
    return reduce_loss(per, t, weight, ignore_index, reduction, shape)


def rescaled_square_loss(input: Tensor, target: Tensor, k: float = 1.0, M: float = 1.0, weight: Tensor | None = None,
                         ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Rescaled square loss, ``(k (f_y - M)^2 + sum_{j != y} f_j^2) / C`` (Hui & Belkin 2021, Section 3).

    ``k = M = 1`` is the mean square error against one-hot labels (``F.mse_loss`` summed over
    classes and divided by ``C``). Other arguments as :func:`squentropy_loss`.
    """
    check_reduction(reduction)
    if target.is_floating_point():
        raise ValueError("rescaled_square_loss takes class-index targets")
    shape = target.shape
    x, t = flatten_classes(input, target)
    valid = t != ignore_index
    safe = torch.where(valid, t, torch.zeros_like(t))
    sq, n_finite, f_true = _wrong_square_terms(x, safe)
    per = (k * (f_true - M).pow(2) + sq) / n_finite.clamp_min(1)
    return reduce_loss(per, t, weight, ignore_index, reduction, shape)


class SquentropyLoss(WeightedLoss):
    """Module form of :func:`squentropy_loss`, a drop-in for :class:`torch.nn.CrossEntropyLoss`."""

    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight, ignore_index, reduction)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return squentropy_loss(input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)


class RescaledSquareLoss(WeightedLoss):
    """Module form of :func:`rescaled_square_loss` (``k``, ``M``: the true class's scale and target)."""

    def __init__(self, k: float = 1.0, M: float = 1.0, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(weight, ignore_index, reduction)
        self.k, self.M = float(k), float(M)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return rescaled_square_loss(input, target, self.k, self.M, self.weight, self.ignore_index, self.reduction)

    def extra_repr(self) -> str:
        return f"k={self.k}, M={self.M}, " + super().extra_repr()


def _cases() -> tuple:
    from zoo.losses.registry import LossCase

    return (
        LossCase("squentropy_loss", SquentropyLoss, {}, squentropy_loss, label_smoothing=True),
        LossCase("rescaled_square_loss", RescaledSquareLoss, {"k": 2.0, "M": 3.0}, rescaled_square_loss),
    )


LOSS_CASES = _cases()
