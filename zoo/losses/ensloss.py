"""EnsLoss: stochastic calibrated loss ensembles for binary classification.

Ben Dai. *EnsLoss: Stochastic Calibrated Loss Ensembles for Preventing Overfitting in
Classification*. ICML 2025. https://arxiv.org/abs/2409.00908 (author's code:
https://github.com/statmlben/ensLoss, MIT; the sampling below follows its ``losses.ensLoss``,
re-implemented, nothing copied).

Notation (code name -> paper symbol): ``z`` the classifier's real score ``f(x)``, ``y`` in
{-1, +1}, ``s = y z`` the margin, ``g`` the loss-derivative ``phi'(s)`` drawn for the batch,
``lam`` the inverse Box-Cox parameter.

A convex margin loss ``phi`` is classification-calibrated iff it is differentiable at 0 with
``phi'(0) < 0`` (Bartlett et al. 2006); in terms of the derivative: ``phi'`` non-decreasing
(convexity) and negative at 0. SGD only ever uses ``phi'`` at the batch margins, so EnsLoss
draws a fresh calibrated *derivative* for every mini-batch instead of fixing ``phi`` (the
paper's doubly stochastic gradient, Algorithm 1):

1. draw ``n`` i.i.d. standard normals ``e_i`` and map them through the inverse Box-Cox
   transform, ``g_i = -BC^{-1}_lam(e_i)`` with ``BC^{-1}_0(e) = exp(e)`` (log-normal, the
   author's default) and ``BC^{-1}_lam(e) = max(1 + lam e, 0)^(1/lam)``, so every ``g_i <= 0``;
2. clip at -1 (``g_i = max(g_i, -1)``) and assign the sorted draws to the examples in the
   order of their margins: the smallest margin gets the most negative derivative, which makes
   the drawn ``phi'`` non-decreasing in ``s`` (convex ``phi``);
3. beyond margin 1 divide by the margin (``g_i / s_i``): a decaying tail, so confidently
   correct examples are pushed less;
4. subtract ``1e-6``, so ``phi'`` is strictly negative (calibration) everywhere.

The gradient of the batch is ``mean_i g_i ds_i/dtheta`` with ``g`` held fixed (no gradient
flows through the draw). The value returned is the loss this derivative integrates to, per
element: ``(g_i - d) s`` for ``s <= 1`` and ``g_i (1 + log s) - d s`` beyond (``d = 1e-6``), so
its autograd gradient is exactly the drawn derivative and finite differences agree with it
away from ties; its *level* is arbitrary, only its slope matters.

Inputs are logits ``z`` of any shape with 0/1 targets of the same shape (``y = 2 t - 1``), as in
the author's code. The ranks are taken over the valid (non-``ignore_index``) elements of the
call, i.e. over the mini-batch, as in the paper. ``generator`` (or ``seed``) makes the draw
reproducible; without either, torch's global generator is used.

Departures: none in the sampling; the author's code also offers a per-epoch random ``lam``
(``2 u - 1``, off by default), which :func:`ensloss` exposes as the ``lam`` argument only.
"""

from __future__ import annotations


import torch
from torch import Tensor, nn

from zoo.losses.registry import LossCase

__all__ = ["inverse_box_cox", "calibrated_derivatives", "ensloss", "EnsLoss", "DELTA"]

DELTA = 1e-6
_REDUCTIONS = ("none", "mean", "sum")


def inverse_box_cox(e: Tensor, lam: float = 0.0) -> Tensor:
    """``BC^{-1}_lam(e)``: ``exp(e)`` at ``lam = 0``, else ``max(1 + lam e, 0)^(1/lam)``."""
    if lam == 0.0:
        return torch.exp(e)
    return (1.0 + lam * e).clamp_min(0.0) ** (1.0 / lam)


def calibrated_derivatives(margins: Tensor, lam: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """One random calibrated loss-derivative per margin (steps 1-3 of the module docstring, before ``- DELTA``).

    ``margins`` is 1-D; the result is non-decreasing in the margin up to the ``1/s`` tail, lies in
    ``[-1, 0]`` and does not depend on autograd (computed on detached margins).
    """
    s = margins.detach().flatten()
    n = s.numel()
    e = torch.randn(n, generator=generator, dtype=torch.float64)
    draws = (-inverse_box_cox(e, lam)).sort().values.clamp_min(-1.0)
    g = torch.empty(n, dtype=torch.float64)
    g[torch.sort(s.cpu(), stable=True).indices] = draws  # smallest margin <- most negative derivative
    g = g.to(device=s.device, dtype=margins.dtype)
    tail = s > 1.0
    return torch.where(tail, g / torch.where(tail, s, torch.ones_like(s)), g)


def ensloss(input: Tensor, target: Tensor, lam: float = 0.0, generator: torch.Generator | None = None,
            seed: int | None = None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """EnsLoss on binary logits: a fresh random calibrated loss-derivative for this batch.

    Args:
        input: logits ``z``, any shape.
        target: 0/1 labels, same shape (``ignore_index`` elements are dropped).
        lam: inverse Box-Cox parameter of the derivative draw (0: log-normal, the default).
        generator: the random generator of the draw; ``seed`` builds a fresh one instead.
        reduction: ``"mean"`` (over the valid elements), ``"sum"`` or ``"none"`` (the per-element
            values, 0 at ignored elements).
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if input.shape != target.shape:
        raise ValueError(f"input {tuple(input.shape)} and target {tuple(target.shape)} must have the same shape")
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    keep = target != ignore_index
    y = 2.0 * torch.where(keep, target, torch.zeros_like(target)).to(input.dtype) - 1.0
    s_all = y * input
    s = s_all[keep]
    g = calibrated_derivatives(s, lam, generator)
    sd = s.detach()
    tail = sd > 1.0
    # the loss whose derivative at s is the drawn one: linear up to 1, logarithmic tail beyond
    log_s = torch.log(torch.where(tail, s, torch.ones_like(s)))
    g_core = torch.where(tail, g * sd, g)  # undo the 1/s of the tail: g_i before step 3
    per = torch.where(tail, g_core * (1.0 + log_s), g * s) - DELTA * s
    if reduction == "mean":
        return per.sum() / max(per.numel(), 1) if per.numel() else per.sum()
    if reduction == "sum":
        return per.sum()
    out = torch.zeros_like(s_all)
    return out.masked_scatter(keep, per)


class EnsLoss(nn.Module):
    """EnsLoss (see :func:`ensloss`); ``seed`` gives the module its own generator, advanced each call.

    With ``resample=False`` every call redraws from a generator freshly seeded with ``seed``:
    the same derivative draw each call (a frozen loss, for tests and debugging, not training).

    Example:
        >>> crit = EnsLoss(seed=0)
        >>> loss = crit(torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1, 0, 0]))
    """

    def __init__(self, lam: float = 0.0, seed: int | None = None, ignore_index: int = -100, reduction: str = "mean",
                 resample: bool = True) -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if not resample and seed is None:
            raise ValueError("resample=False needs a seed (the frozen draw's)")
        self.lam, self.ignore_index, self.reduction = float(lam), int(ignore_index), reduction
        self.seed, self.resample = seed, bool(resample)
        self.generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        if not self.resample:
            return ensloss(input, target, self.lam, None, self.seed, self.ignore_index, self.reduction)
        return ensloss(input, target, self.lam, self.generator, None, self.ignore_index, self.reduction)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, reduction={self.reduction!r}"


# Binary margin loss: the shared per-class weight, masked-logit and spatial tests address
# class-index inputs. smooth=False: the drawn derivative is piecewise (ranks, the kink at s = 1).
# The registry cases use the frozen draw (resample=False); no function= here, because the
# frozen-draw switch is the module's (tests/losses/test_ensloss.py checks function == module).
LOSS_CASES = [
    LossCase("ensloss", EnsLoss, {"seed": 0, "resample": False}, target="binary", weight=False,
             masked_logits=False, spatial=False, smooth=False),
    LossCase("ensloss_boxcox", EnsLoss, {"seed": 1, "lam": 0.5, "resample": False}, target="binary", weight=False,
             masked_logits=False, spatial=False, smooth=False),
]

