"""Sparsemax: the Euclidean projection onto the probability simplex, and the sparsemax loss.

André F. T. Martins, Ramón Fernandez Astudillo. *From Softmax to Sparsemax: A Sparse Model of
Attention and Multi-Label Classification*. ICML 2016. https://arxiv.org/abs/1602.02068

Notation (the paper's): ``z`` are the ``K`` scores of one example, ``z_(1) >= ... >= z_(K)`` the
same sorted. Sparsemax is the closest point of the simplex (Eq. 2), in closed form (Prop. 1)::

    sparsemax(z) = argmin_{p in simplex} ||p - z||^2,      sparsemax_i(z) = max(z_i - tau(z), 0)
    k(z)   = max{ k : 1 + k z_(k) > sum_{j <= k} z_(j) }            (the support size)
    tau(z) = (sum_{j <= k(z)} z_(j) - 1) / k(z)

Its Jacobian (Eq. 12) is ``diag(s) - s s^T / |S(z)|`` with ``s`` the support indicator ``S(z)``.
The sparsemax loss (Eq. 17-18, the analogue of the logistic loss, with gradient
``sparsemax(z) - q``) for a target distribution ``q``, and for one class ``k`` (``q = e_k``)::

    L(z; q) = -q.z + 1/2 sum_{j in S(z)} (z_j^2 - tau(z)^2) + 1/2 ||q||^2
    L(z; k) = -z_k + 1/2 sum_{j in S(z)} (z_j^2 - tau(z)^2) + 1/2

For multi-label classification (Section 4) the target of an example with label set ``Y`` is the
label proportions ``q = 1_Y / |Y|`` (:func:`sparsemax_multilabel_loss`); the predicted label set
is the support of sparsemax (``sparsemax(z) > 0``), possibly thresholded.

Conventions: :func:`sparsemax_loss` takes class indices (the ``F.cross_entropy`` conventions:
any batch shape, ``weight``, ``ignore_index``, ``reduction``) or class-probability targets of the
input's shape. Departures (ours): a ``-inf`` score is a masked class: it gets probability 0 and no
gradient (entmax's sparsemax returns NaN there, deep-spin/entmax#9). ``-inf`` scores sort last and
never enter the support; as a defensive measure the arithmetic also sees them replaced by
``max(z) - 2``, which cannot be in the support either (``tau(z) >= max(z) - 1``), so no
``inf - inf`` can arise. A row of only ``-inf`` scores is undefined and gives NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.losses._base import WeightedLoss, check_reduction, flatten_classes, reduce_loss

__all__ = ["sparsemax", "sparsemax_threshold", "sparsemax_loss", "sparsemax_multilabel_loss", "Sparsemax",
           "SparsemaxLoss", "SparsemaxMultilabelLoss"]


def _finite_fill(z: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``z`` with ``-inf`` replaced by ``max(z) - 2`` (outside any support) and the mask of finite entries."""
    finite = torch.isfinite(z)
    zmax = torch.where(finite, z, torch.full_like(z, -torch.inf)).amax(dim, keepdim=True)
    low = (zmax - 2.0).detach().expand_as(z)
    return torch.where(finite, z, low), finite


def sparsemax_threshold(input: Tensor, dim: int = -1) -> tuple[Tensor, Tensor]:
    """``tau(z)`` (keepdim) and the support size ``k(z)`` along ``dim`` (Martins & Astudillo 2016, Prop. 1)."""
    z, _ = _finite_fill(input, dim)
    zs = z.sort(dim=dim, descending=True).values
    ks = torch.arange(1, z.shape[dim] + 1, device=z.device, dtype=z.dtype)
    shape = [1] * z.dim()
    shape[dim] = -1
    ks = ks.view(shape)
    cums = zs.cumsum(dim)
    in_support = 1 + ks * zs > cums                       # true for k = 1 .. k(z), false after
    k_z = in_support.sum(dim, keepdim=True)               # >= 1 always
    tau = (cums.gather(dim, k_z - 1) - 1) / k_z.to(z.dtype)
    return tau, k_z


def sparsemax(input: Tensor, dim: int = -1) -> Tensor:
    """``max(z - tau(z), 0)``: the Euclidean projection of ``z`` onto the simplex along ``dim`` (Eq. 2).

    Example:
        >>> import torch
        >>> sparsemax(torch.tensor([1.0, 0.5, -1.0]))
        tensor([0.7500, 0.2500, 0.0000])
    """
    z, finite = _finite_fill(input, dim)
    tau, _ = sparsemax_threshold(input, dim)
    return torch.where(finite, torch.clamp(z - tau, min=0), torch.zeros_like(z))


def _loss_terms(z: Tensor) -> Tensor:
    """``1/2 sum_{j in S(z)} (z_j^2 - tau^2)`` per row of ``(M, K)`` scores (``-inf`` allowed)."""
    zf, finite = _finite_fill(z, 1)
    tau, _ = sparsemax_threshold(z, 1)
    support = (zf > tau) & finite
    zs = torch.where(support, zf, torch.zeros_like(zf))
    ts = torch.where(support, tau.expand_as(zf), torch.zeros_like(zf))
    return 0.5 * (zs * zs - ts * ts).sum(1)


def _dot_q(z: Tensor, q: Tensor) -> Tensor:
    zf, _ = _finite_fill(z, 1)
    # where, not multiply: a masked (-inf) score with q = 0 contributes 0
    return torch.where(q != 0, q * zf, torch.zeros_like(zf)).sum(1)


def sparsemax_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                   reduction: str = "mean") -> Tensor:
    """The sparsemax loss ``-q.z + 1/2 sum_{S(z)} (z_j^2 - tau^2) + 1/2 ||q||^2`` (Eq. 17-18).

    Args:
        input: scores ``(N, C)``, ``(C,)`` or ``(N, C, d1, ...)``.
        target: class indices (``q = e_t``), or class probabilities of ``input``'s shape.
        weight, ignore_index: per-class weights and the ignored index (class-index targets only).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
    """
    check_reduction(reduction)
    if target.is_floating_point():
        if weight is not None:
            raise ValueError("`weight` is only supported with class-index targets")
        cdim = 0 if input.dim() == 1 else 1
        z = input.movedim(cdim, -1).reshape(-1, input.shape[cdim])
        q = target.movedim(cdim, -1).reshape(-1, input.shape[cdim]).to(z.dtype)
        per = -_dot_q(z, q) + _loss_terms(z) + 0.5 * (q * q).sum(1)
        out_shape = input.movedim(cdim, -1).shape[:-1]
        if reduction == "none":
            return per.reshape(out_shape)
        return per.sum() if reduction == "sum" else per.mean()
    shape = target.shape
    z, t = flatten_classes(input, target)
    safe = torch.where(t != ignore_index, t, torch.zeros_like(t))
    per = -z.gather(1, safe[:, None]).squeeze(1) + _loss_terms(z) + 0.5
    return reduce_loss(per, t, weight, ignore_index, reduction, shape)


def sparsemax_multilabel_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """The sparsemax loss against label proportions ``q = y / |y|`` of multi-hot ``target`` (Section 4).

    An example without any label has no proportions; it gets ``q = 0`` (the loss then only pulls
    its scores down through ``1/2 sum_S (z_j^2 - tau^2)``, whose gradient is ``sparsemax(z)``).
    """
    y = target.to(input.dtype)
    cdim = 0 if input.dim() == 1 else 1
    q = y / y.sum(cdim, keepdim=True).clamp_min(1.0)
    return sparsemax_loss(input, q, reduction=reduction)


class Sparsemax(torch.nn.Module):
    """Module form of :func:`sparsemax` along ``dim``."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return sparsemax(input, self.dim)


class SparsemaxLoss(WeightedLoss):
    """Module form of :func:`sparsemax_loss`."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return sparsemax_loss(input, target, self.weight, self.ignore_index, self.reduction)


class SparsemaxMultilabelLoss(torch.nn.Module):
    """Module form of :func:`sparsemax_multilabel_loss`."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return sparsemax_multilabel_loss(input, target, self.reduction)


def _cases() -> tuple:
    from zoo.losses.registry import LossCase

    return (
        # piecewise quadratic (the support changes at kinks): finite differences, not gradcheck
        LossCase("sparsemax_loss", SparsemaxLoss, {}, sparsemax_loss, smooth=False),
        # multi-hot targets: no per-class weight or ignore_index in the paper's multi-label loss
        LossCase("sparsemax_multilabel_loss", SparsemaxMultilabelLoss, {}, sparsemax_multilabel_loss,
                 target="multilabel", weight=False, ignore_index=False, smooth=False, spatial=False),
    )


LOSS_CASES = _cases()
