"""The Z-loss: a shift- and scale-invariant classification loss of the spherical family.

Alexandre de Brébisson, Pascal Vincent. *The Z-loss: a shift and scale invariant classification
loss belonging to the Spherical Family*. arXiv:1604.08859, 2016. https://arxiv.org/abs/1604.08859

Notation (the paper's): ``o`` are the ``D`` pre-activations (logits) of one example, ``c`` its
class. The Z-loss standardises the outputs and applies a scaled softplus to the target's z-score::

    mu = 1/D sum_k o_k,        sigma^2 = 1/D sum_k o_k^2 - mu^2
    z_k = (o_k - mu) / sigma
    L_Z(o, c) = 1/a * softplus(a * (b - z_c)) = 1/a * log(1 + exp(a * (b - z_c)))

It depends on ``o`` only through ``sum_k o_k``, ``sum_k o_k^2`` and ``o_c``, so it belongs to the
spherical family (its gradient can be computed without touching every output, the source of the
paper's large-vocabulary speed-ups, which this dense implementation does not exploit), and it is
invariant to ``o -> alpha * o + beta`` for any ``alpha > 0`` and ``beta``: only the ranks and the
relative spread of the scores matter, as for the top-k error. ``b`` sets where along the z-score
the loss stops pushing (a margin), ``a`` how sharply it stops (large ``a``: a hinge at ``b``;
small ``a``: close to the linear ``b - z_c``). For ``D`` classes ``z_c <= sqrt(D - 1)``.

Conventions as :func:`torch.nn.functional.cross_entropy` (class-index targets, any batch shape,
``weight``, ``ignore_index``, ``reduction``). Departures (ours): ``sigma`` is computed as
``sqrt(sigma^2 + tiny)`` (``tiny`` the dtype's smallest normal number) so that equal logits give
``z = 0`` and a finite gradient instead of ``0/0``; this moves nothing measurable otherwise. A
``-inf`` logit marks an absent class: the mean and spread are taken over the finite logits only
(``D`` becomes their count).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.losses._base import WeightedLoss, check_reduction, flatten_classes, reduce_loss

__all__ = ["z_scores", "z_loss", "ZLoss"]


def z_scores(input: Tensor, dim: int = -1) -> Tensor:
    """``(o - mean(o)) / std(o)`` along ``dim`` (population std; ``-inf`` entries stay ``-inf``, excluded from the stats)."""
    finite = torch.isfinite(input)
    x0 = torch.where(finite, input, torch.zeros_like(input))
    n = finite.sum(dim, keepdim=True).clamp_min(1).to(input.dtype)
    mu = x0.sum(dim, keepdim=True) / n
    dev = torch.where(finite, x0 - mu, torch.zeros_like(x0))
    var = dev.pow(2).sum(dim, keepdim=True) / n
    sigma = torch.sqrt(var + torch.finfo(input.dtype).tiny)
    return torch.where(finite, dev / sigma, input)


def z_loss(input: Tensor, target: Tensor, a: float = 1.0, b: float = 3.0, weight: Tensor | None = None,
           ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """The Z-loss ``1/a softplus(a (b - z_c))`` of the target's z-score ``z_c`` (de Brébisson & Vincent 2016).

    Args:
        input: logits ``(N, C)``, ``(C,)`` or ``(N, C, d1, ...)``.
        target: class indices.
        a: sharpness of the softplus (``a > 0``).
        b: the z-score beyond which the loss flattens out.
        weight, ignore_index, reduction: as in :func:`torch.nn.functional.cross_entropy`.

    Example:
        >>> import torch
        >>> x = torch.tensor([[1.0, 0.0, -1.0]]); y = torch.tensor([0])
        >>> bool(torch.isclose(z_loss(x, y), z_loss(10 * x - 4, y)))  # shift and scale invariant
        True
    """
    check_reduction(reduction)
    if a <= 0:
        raise ValueError(f"a must be positive, got {a}")
    if target.is_floating_point():
        raise ValueError("z_loss takes class-index targets")
    shape = target.shape
    x, t = flatten_classes(input, target)
    safe = torch.where(t != ignore_index, t, torch.zeros_like(t))
    z_c = z_scores(x, dim=1).gather(1, safe[:, None]).squeeze(1)
    per = F.softplus(a * (b - z_c)) / a  # torch's softplus switches to the identity for large inputs: stable
    return reduce_loss(per, t, weight, ignore_index, reduction, shape)


class ZLoss(WeightedLoss):
    """Module form of :func:`z_loss`."""

    def __init__(self, a: float = 1.0, b: float = 3.0, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(weight, ignore_index, reduction)
        if a <= 0:
            raise ValueError(f"a must be positive, got {a}")
        self.a, self.b = float(a), float(b)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return z_loss(input, target, self.a, self.b, self.weight, self.ignore_index, self.reduction)

    def extra_repr(self) -> str:
        return f"a={self.a}, b={self.b}, " + super().extra_repr()


def _cases() -> tuple:
    from zoo.losses.registry import LossCase

    return (LossCase("z_loss", ZLoss, {"a": 0.5, "b": 2.0}, z_loss, min_classes=3),)


LOSS_CASES = _cases()
