"""What every zoo loss shares so that it behaves like torch's own losses.

* :func:`flatten_classes`: any batch shape. ``(N, C)``, unbatched ``(C,)`` and ``(N, C, d1, ...)``
  inputs with ``(N,)``, ``()`` and ``(N, d1, ...)`` class-index targets become ``(M, C)`` and
  ``(M,)``, as in :func:`torch.nn.functional.cross_entropy`.
* :func:`reduce_loss`: per-element losses reduced like ``F.cross_entropy``: each element
  weighted by ``weight[target]``, elements whose target is ``ignore_index`` dropped, ``"mean"``
  dividing by the summed weights of the kept elements (0 when nothing is kept, where torch gives
  NaN), ``"none"`` returning the target's shape.
* :func:`masked_log_softmax` / :func:`entropy_terms`: ``-inf`` logits (masked classes) give
  probability 0 and contribute 0 to every sum -- never ``0 * -inf = NaN``.
* :class:`WeightedLoss`: the module base holding ``weight`` (a buffer), ``ignore_index`` and
  ``reduction``, like ``torch.nn.modules.loss._WeightedLoss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["REDUCTIONS", "check_reduction", "flatten_classes", "reduce_loss", "masked_log_softmax",
           "safe_xlogy", "WeightedLoss", "smooth_targets"]

REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def flatten_classes(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """``(M, C)`` logits and ``(M,)`` targets from any of ``F.cross_entropy``'s layouts."""
    if input.dim() == 1:
        return input.unsqueeze(0), target.reshape(1)
    if input.dim() == 2:
        return input, target
    c = input.shape[1]
    return input.movedim(1, -1).reshape(-1, c), target.reshape(-1)


def reduce_loss(per_element: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int | None,
                reduction: str, shape: torch.Size | tuple[int, ...] | None = None) -> Tensor:
    """Reduce flat per-element losses (``(M,)``) with torch's weighting and ``ignore_index`` rules.

    ``target`` holds the flat class indices; ``shape`` is the target's original shape (for
    ``"none"``).
    """
    check_reduction(reduction)
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    safe_t = torch.where(valid, target, torch.zeros_like(target))
    w = torch.ones_like(per_element) if weight is None else weight.to(per_element.dtype)[safe_t]
    w = torch.where(valid, w, torch.zeros_like(w))
    # where, not multiply: an ignored element's loss may be inf or NaN (its target is not a class)
    weighted = torch.where(valid, per_element * w, torch.zeros_like(per_element))
    if reduction == "none":
        return weighted.reshape(shape) if shape is not None else weighted
    if reduction == "sum":
        return weighted.sum()
    return weighted.sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)


def masked_log_softmax(input: Tensor, dim: int = -1) -> Tensor:
    """``log_softmax`` (``-inf`` where a logit is ``-inf``; finite elsewhere as long as one is finite)."""
    return F.log_softmax(input, dim=dim)


def safe_xlogy(p: Tensor, logq: Tensor) -> Tensor:
    """``p * logq`` with ``0 * -inf = 0`` (and a zero gradient there): sums over masked classes stay finite."""
    zero = p == 0
    return torch.where(zero, torch.zeros_like(p), p * torch.where(zero, torch.zeros_like(logq), logq))


def smooth_targets(target: Tensor, num_classes: int, label_smoothing: float, dtype: torch.dtype) -> Tensor:
    """One-hot of class indices mixed with the uniform distribution (torch's label smoothing)."""
    q = F.one_hot(target.clamp_min(0), num_classes).to(dtype)
    if label_smoothing > 0:
        q = q * (1.0 - label_smoothing) + label_smoothing / num_classes
    return q


class WeightedLoss(nn.Module):
    """Module base of a class-index loss: ``weight`` (per class), ``ignore_index``, ``reduction``."""

    weight: Tensor | None

    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.register_buffer("weight", weight)
        self.ignore_index, self.reduction = int(ignore_index), reduction

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}"
