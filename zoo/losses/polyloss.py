"""PolyLoss: classification losses as polynomials in ``(1 - P_t)``.

Zhaoqi Leng, Mingxing Tan, Chenxi Liu, Ekin Dogus Cubuk, Xiaojie Shi, Shuyang Cheng,
Dragomir Anguelov. *PolyLoss: A Polynomial Expansion Perspective of Classification Loss
Functions*. ICLR 2022. https://arxiv.org/abs/2204.12511

``P_t`` is the model's probability of the target class. Taylor-expanding around ``P_t = 1``
writes cross-entropy and focal loss as sums of polynomial bases (the paper's Eq. 1-3)::

    L_CE = -log(P_t)              = sum_{j>=1} 1/j (1 - P_t)^j
    L_FL = -(1 - P_t)^g log(P_t)  = sum_{j>=1} 1/j (1 - P_t)^(j+g)
    L_Poly                        = sum_{j>=1} a_j (1 - P_t)^j

Poly-N perturbs the first N coefficients, ``a_j = 1/j + e_j``; the infinite tail is summed in
closed form by the logarithm (Eq. 4)::

    L_Poly-N = sum_{j=1}^{N} (e_j + 1/j)(1 - P_t)^j + sum_{j>N} 1/j (1 - P_t)^j
             = -log(P_t) + sum_{j=1}^{N} e_j (1 - P_t)^j

Poly-1, the paper's recommended form, has a single hyperparameter (Eq. 5)::

    L_Poly-1 = -log(P_t) + e (1 - P_t)

and Poly-1 for focal loss perturbs the focal loss's leading term ``(1 - P_t)^(g+1)``::

    L_Poly-1-FL = -a_t (1 - P_t)^g log(P_t) + e (1 - P_t)^(g+1)

The paper uses ``e = 2`` for ImageNet classification and ``e = -1`` for COCO detection and
segmentation (with ``e >= -1`` keeping the leading coefficient non-negative); it recommends
tuning ``e`` per task. ``e = 0`` recovers cross-entropy / focal loss exactly.

The cross-entropy forms follow :func:`torch.nn.functional.cross_entropy`'s conventions: input
``(N, C)``, ``(C,)`` or ``(N, C, d1, ...)``; class-index or class-probability targets; ``weight``,
``ignore_index``, ``label_smoothing`` and ``reduction``. With probability (or smoothed) targets
``q``, ``P_t = sum_c q_c p_c``, as in the paper's label-smoothing variant (its appendix).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "poly1_cross_entropy",
    "poly_n_cross_entropy",
    "polynomial_loss",
    "poly1_focal_loss",
    "poly1_sigmoid_focal_loss",
    "Poly1CrossEntropyLoss",
    "PolyNCrossEntropyLoss",
    "Poly1FocalLoss",
    "Poly1SigmoidFocalLoss",
]

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _class_dim(input: Tensor) -> int:
    # F.cross_entropy: a 1-D input is a single unbatched example whose classes are dim 0.
    return 0 if input.dim() == 1 else 1


def _target_mask(input: Tensor, index: Tensor) -> Tensor:
    """Boolean one-hot of class indices ``index`` along ``input``'s class axis."""
    cdim = _class_dim(input)
    mask = torch.zeros(input.shape, dtype=torch.bool, device=input.device)
    return mask.scatter_(cdim, index.unsqueeze(cdim), True)


def _one_minus_pt_index(input: Tensor, index: Tensor) -> Tensor:
    """``1 - P_t`` for class indices, as the summed probability of the other classes.

    Summing the non-target probabilities has no cancellation, so ``1 - P_t`` keeps full
    relative precision for confident predictions, where ``1 - softmax[t]`` cancels.
    """
    p = F.softmax(input, dim=_class_dim(input))
    return p.masked_fill(_target_mask(input, index), 0.0).sum(_class_dim(input))


def _one_minus_pt(
    input: Tensor, target: Tensor, ignore_index: int, label_smoothing: float
) -> tuple[Tensor, Tensor | None]:
    """``1 - P_t`` per element (the class axis removed) and, for class indices, the valid mask.

    With (smoothed) target probabilities ``q``, ``1 - P_t = sum_c q_c (1 - p_c)``.
    """
    cdim = _class_dim(input)
    num_classes = input.shape[cdim]
    if target.is_floating_point():  # class probabilities, same shape as input
        q = target
        if label_smoothing > 0:
            q = q * (1.0 - label_smoothing) + label_smoothing / num_classes
        return (q * (1.0 - F.softmax(input, dim=cdim))).sum(cdim), None
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    one_minus = _one_minus_pt_index(input, safe)
    if label_smoothing > 0:
        # q = (1 - s) onehot + s / C, so 1 - <q, p> = (1 - s)(1 - p_t) + s (1 - 1/C).
        one_minus = (1.0 - label_smoothing) * one_minus + label_smoothing * (1.0 - 1.0 / num_classes)
    return torch.where(valid, one_minus, torch.zeros_like(one_minus)), valid


def _poly_cross_entropy(
    input: Tensor,
    target: Tensor,
    epsilons: Sequence[float | Tensor],
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
) -> Tensor:
    _check_reduction(reduction)
    if target.is_floating_point() and weight is not None:
        raise ValueError("`weight` is only supported with class-index targets")
    # The log term is torch's own, reduced by torch; the polynomial term is reduced alongside
    # with the same normaliser, so epsilon = 0 gives F.cross_entropy bit for bit.
    ce = F.cross_entropy(
        input, target, weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    )
    one_minus, valid = _one_minus_pt(input, target, ignore_index, label_smoothing)
    # Horner's rule for sum_j e_j x^j = x (e_1 + x (e_2 + ...)).
    poly = torch.zeros_like(one_minus)
    for eps in reversed(list(epsilons)):
        poly = (poly + eps) * one_minus
    w_t: Tensor | None = None
    if valid is not None and weight is not None:
        # The polynomial term is weighted like F.cross_entropy weights the log term: by w[y].
        w_t = weight.to(input.dtype)[torch.where(valid, target, torch.zeros_like(target))]
        w_t = torch.where(valid, w_t, torch.zeros_like(w_t))
        poly = poly * w_t
    if reduction == "none":
        return ce + poly
    if reduction == "sum":
        return ce + poly.sum()
    # "mean": F.cross_entropy divides by the summed weights of non-ignored targets for class
    # indices, and by the number of elements for probability targets.
    if valid is None:
        denom = poly.new_tensor(float(poly.numel()))
    elif w_t is None:
        denom = valid.sum().to(poly.dtype)
    else:
        denom = w_t.sum()
    return ce + poly.sum() / denom


def poly1_cross_entropy(
    input: Tensor,
    target: Tensor,
    epsilon: float | Tensor = 1.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Poly-1 cross-entropy, ``-log(P_t) + epsilon (1 - P_t)`` (Leng et al. 2022, Eq. 5).

    Arguments are those of :func:`torch.nn.functional.cross_entropy` plus ``epsilon``, the
    perturbation of the leading polynomial coefficient (``1 -> 1 + epsilon``). The paper uses
    ``epsilon = 2`` for ImageNet classification and ``-1`` for COCO; ``0`` is cross-entropy.
    With ``weight``, each element's polynomial term is weighted by ``weight[target]`` like its
    log term; probability targets take no ``weight``. ``epsilon`` may be a tensor broadcastable
    to the unreduced loss (e.g. one value per trailing position, to train several variants in
    one call).
    """
    return _poly_cross_entropy(input, target, [epsilon], weight, ignore_index, reduction, label_smoothing)


def poly_n_cross_entropy(
    input: Tensor,
    target: Tensor,
    epsilons: Sequence[float],
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Poly-N cross-entropy, ``-log(P_t) + sum_{j=1}^N epsilons[j-1] (1 - P_t)^j`` (Eq. 4).

    The closed form of the series whose first ``N`` coefficients are ``1/j + epsilons[j-1]``
    and the rest ``1/j``. Conventions as in :func:`poly1_cross_entropy`.
    """
    if len(epsilons) == 0:
        raise ValueError("epsilons must hold at least one coefficient (N >= 1)")
    return _poly_cross_entropy(input, target, list(epsilons), weight, ignore_index, reduction, label_smoothing)


def polynomial_loss(
    input: Tensor,
    target: Tensor,
    alphas: Sequence[float],
    reduction: str = "mean",
) -> Tensor:
    """The truncated PolyLoss series ``sum_{j=1}^{M} alphas[j-1] (1 - P_t)^j`` (Eq. 3, finite).

    With ``alphas[j-1] = 1/j`` it is cross-entropy with its tail beyond ``M`` dropped (the
    paper's "drop" study of how many terms cross-entropy needs). Class-index targets only.
    """
    _check_reduction(reduction)
    one_minus, _ = _one_minus_pt(input, target, ignore_index=-100, label_smoothing=0.0)
    loss = torch.zeros_like(one_minus)
    for a in reversed(list(alphas)):
        loss = (loss + a) * one_minus
    return _reduce(loss, reduction)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def poly1_focal_loss(
    input: Tensor,
    target: Tensor,
    epsilon: float = 1.0,
    gamma: float = 2.0,
    alpha: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Poly-1 softmax focal loss, ``-a_t (1 - P_t)^gamma log(P_t) + epsilon (1 - P_t)^(gamma+1)``.

    The paper's focal-loss Poly-1 with a softmax ``P_t``: class-index targets, input ``(N, C, ...)`` or
    ``(C,)``. ``alpha`` optionally weights classes (``a_t = alpha[target]``) in the focal term
    only, as in the paper's code. ``epsilon = 0`` is the focal loss; with ``gamma = 0`` too,
    cross-entropy. ``"mean"`` averages over elements.
    """
    _check_reduction(reduction)
    cdim = _class_dim(input)
    logp_t = F.log_softmax(input, dim=cdim).gather(cdim, target.unsqueeze(cdim)).squeeze(cdim)
    one_minus = _one_minus_pt_index(input, target)
    focal = -one_minus.pow(gamma) * logp_t
    if alpha is not None:
        focal = focal * alpha.to(input.dtype)[target]
    return _reduce(focal + epsilon * one_minus.pow(gamma + 1.0), reduction)


def poly1_sigmoid_focal_loss(
    input: Tensor,
    target: Tensor,
    epsilon: float = 1.0,
    gamma: float = 2.0,
    alpha: float = 0.25,
    reduction: str = "mean",
) -> Tensor:
    """Poly-1 sigmoid (binary, per-logit) focal loss, the form the paper uses for detection.

    ``p = sigmoid(input)``, ``P_t = p`` where ``target = 1`` and ``1 - p`` where ``target = 0``
    (soft targets interpolate), ``a_t = alpha`` / ``1 - alpha`` likewise (``alpha < 0``
    disables it, as in ``torchvision.ops.sigmoid_focal_loss``)::

        L = -a_t (1 - P_t)^gamma log(P_t) + epsilon (1 - P_t)^(gamma+1)

    ``target`` is float with ``input``'s shape; ``"mean"`` averages over all elements.
    """
    _check_reduction(reduction)
    bce = F.binary_cross_entropy_with_logits(input, target, reduction="none")
    # 1 - P_t, with 1 - sigmoid(x) written as sigmoid(-x) to keep precision for confident logits.
    one_minus = target * torch.sigmoid(-input) + (1 - target) * torch.sigmoid(input)
    focal = bce * one_minus.pow(gamma)
    if alpha >= 0:
        focal = focal * (alpha * target + (1 - alpha) * (1 - target))
    return _reduce(focal + epsilon * one_minus.pow(gamma + 1.0), reduction)


class Poly1CrossEntropyLoss(nn.Module):
    """Module form of :func:`poly1_cross_entropy`, a drop-in for :class:`torch.nn.CrossEntropyLoss`."""

    weight: Tensor | None

    def __init__(
        self,
        epsilon: float = 1.0,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        _check_reduction(reduction)
        self.epsilon = float(epsilon)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return poly1_cross_entropy(
            input, target, self.epsilon, self.weight, self.ignore_index, self.reduction, self.label_smoothing
        )

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, reduction={self.reduction!r}"


class PolyNCrossEntropyLoss(nn.Module):
    """Module form of :func:`poly_n_cross_entropy`; ``epsilons`` are ``e_1 .. e_N``."""

    weight: Tensor | None

    def __init__(
        self,
        epsilons: Sequence[float],
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        _check_reduction(reduction)
        if len(epsilons) == 0:
            raise ValueError("epsilons must hold at least one coefficient (N >= 1)")
        self.epsilons = [float(e) for e in epsilons]
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return poly_n_cross_entropy(
            input, target, self.epsilons, self.weight, self.ignore_index, self.reduction, self.label_smoothing
        )

    def extra_repr(self) -> str:
        return f"epsilons={self.epsilons}, reduction={self.reduction!r}"


class Poly1FocalLoss(nn.Module):
    """Module form of :func:`poly1_focal_loss` (softmax, class-index targets)."""

    alpha: Tensor | None

    def __init__(
        self, epsilon: float = 1.0, gamma: float = 2.0, alpha: Tensor | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__()
        _check_reduction(reduction)
        self.epsilon, self.gamma = float(epsilon), float(gamma)
        self.register_buffer("alpha", alpha)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return poly1_focal_loss(input, target, self.epsilon, self.gamma, self.alpha, self.reduction)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, gamma={self.gamma}, reduction={self.reduction!r}"


class Poly1SigmoidFocalLoss(nn.Module):
    """Module form of :func:`poly1_sigmoid_focal_loss` (per-logit binary targets)."""

    def __init__(self, epsilon: float = 1.0, gamma: float = 2.0, alpha: float = 0.25, reduction: str = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        self.epsilon, self.gamma, self.alpha = float(epsilon), float(gamma), float(alpha)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return poly1_sigmoid_focal_loss(input, target, self.epsilon, self.gamma, self.alpha, self.reduction)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, gamma={self.gamma}, alpha={self.alpha}, reduction={self.reduction!r}"


def _cases() -> tuple:
    from zoo.losses.registry import LossCase

    return (
        LossCase("poly1_cross_entropy", Poly1CrossEntropyLoss, {"epsilon": 2.0}, poly1_cross_entropy,
                 label_smoothing=True),
        LossCase("poly_n_cross_entropy", PolyNCrossEntropyLoss, {"epsilons": [2.0, -0.5]}, poly_n_cross_entropy,
                 label_smoothing=True),
        # alpha weights the focal term only (the paper's code), so it is not torch's `weight`
        LossCase("poly1_focal_loss", Poly1FocalLoss, {"epsilon": 1.0, "gamma": 2.0}, poly1_focal_loss,
                 weight=False, ignore_index=False),
        LossCase("poly1_sigmoid_focal_loss", Poly1SigmoidFocalLoss, {"epsilon": 1.0}, poly1_sigmoid_focal_loss,
                 target="multilabel", weight=False, ignore_index=False, masked_logits=False),
    )


LOSS_CASES = _cases()
