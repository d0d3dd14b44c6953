"""Learning to reject with a fixed predictor: the rejection loss and its exponential surrogate.

Christopher Mohri, Daniel Andor, Eunsol Choi, Michael Collins, Anqi Mao, Yutao Zhong. *Learning
to Reject with a Fixed Predictor: Application to Decontextualization*. ICLR 2024.
https://arxiv.org/abs/2301.09044

Notation (code name -> paper symbol): ``r`` the rejector's score ``r(x)`` (``r > 0``: accept the
fixed predictor's output, ``r <= 0``: reject), ``a`` the label of the predictor's output on ``x``
(``a = +1``: acceptable, ``a = -1``: not; here ``a = +1`` iff the fixed classifier is correct),
``c`` the cost of a rejection, ``alpha`` the surrogate's scale.

The rejection loss of a fixed predictor (the paper's Section 3) charges an accepted bad output 1
and any rejection ``c``::

    L(r, x, a) = 1[a <= 0] 1[r(x) > 0] + c 1[r(x) <= 0]

Its Bayes rejector accepts ``x`` iff ``eta(x) = P(a = -1 | x) < c`` (Chow's rule for the fixed
predictor). The surrogate replaces both indicators by exponentials with built-in threshold 0::

    L_alpha(r, x, a) = 1[a <= 0] exp(alpha r(x)) + c exp(-alpha r(x))

whose pointwise minimiser ``r* = log(c / eta) / (2 alpha)`` is positive exactly when
``eta < c``: minimising it recovers the Bayes rejector, with no threshold to tune afterwards.

Warning:
    This is our reading of the paper's surrogate, not a transcription: the text available to us
    (abstract, reviews, figure captions) fixes the rejection loss, the exponential form with a
    scale ``alpha`` (4 in the paper's main experiments, 3.5 in its vision ones) and the built-in
    threshold of 0, but we could not check the paper's exact second parameter ``beta`` (its
    Figure 2 ties ``beta`` to ``alpha`` and ``c``). Here the rejection term has the same scale
    ``alpha`` (``beta = alpha``), the choice under which the minimiser is Chow's rule above;
    ``beta`` may be given to use another.

Inputs: rejector scores ``r`` of any shape and 0/1 ``correct`` targets of the same shape
(``1``: the fixed predictor is right, ``a = +1``); ``reduction`` as in torch, ``ignore_index``
drops elements. The exponentials are computed in a numerically safe way by clamping ``r`` to
``[-clamp, clamp]`` (``clamp = 30 / alpha`` by default), which leaves the loss and its gradient
unchanged wherever they are representable.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.losses.registry import LossCase

__all__ = ["rejection_loss", "rejection_surrogate", "RejectionSurrogateLoss", "bayes_rejector_score"]

_REDUCTIONS = ("none", "mean", "sum")


def _reduce(per: Tensor, keep: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return torch.where(keep, per, torch.zeros_like(per))
    per = per[keep]
    return per.sum() if reduction == "sum" else per.sum() / max(per.numel(), 1)


def rejection_loss(r: Tensor, correct: Tensor, c: float, reduction: str = "mean", ignore_index: int = -100) -> Tensor:
    """The rejection loss ``1[a <= 0] 1[r > 0] + c 1[r <= 0]`` (not differentiable: for evaluation)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    keep = correct != ignore_index
    bad = (correct == 0) & keep
    per = (bad & (r > 0)).to(r.dtype) + c * (r <= 0).to(r.dtype)
    return _reduce(per, keep, reduction)


def rejection_surrogate(r: Tensor, correct: Tensor, c: float = 0.1, alpha: float = 4.0, beta: float | None = None,
                        reduction: str = "mean", ignore_index: int = -100, clamp: float | None = None) -> Tensor:
    """``1[a <= 0] exp(alpha r) + c exp(-beta r)`` (``beta = alpha`` by default; see the module docstring).

    Args:
        r: rejector scores (``> 0`` accepts), any shape.
        correct: 1 where the fixed predictor is right (``a = +1``), 0 where it is wrong, same shape.
        c: the rejection cost, in (0, 1).
        alpha: the scale of the acceptance term; ``beta`` that of the rejection term.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 < c < 1.0:
        raise ValueError(f"the rejection cost c must lie in (0, 1), got {c}")
    if alpha <= 0 or (beta is not None and beta <= 0):
        raise ValueError("alpha and beta must be positive")
    if r.shape != correct.shape:
        raise ValueError(f"r {tuple(r.shape)} and correct {tuple(correct.shape)} must have the same shape")
    beta = alpha if beta is None else beta
    keep = correct != ignore_index
    bad = ((correct == 0) & keep).to(r.dtype)
    bound = clamp if clamp is not None else 30.0 / min(alpha, beta)
    rc = r.clamp(-bound, bound)
    per = bad * torch.exp(alpha * rc) + c * torch.exp(-beta * rc)
    return _reduce(per, keep, reduction)


def bayes_rejector_score(eta: Tensor, c: float, alpha: float = 4.0) -> Tensor:
    """The surrogate's pointwise minimiser ``log(c / eta) / (2 alpha)`` for ``eta = P(wrong | x)``."""
    return torch.log(c / eta) / (2.0 * alpha)


class RejectionSurrogateLoss(nn.Module):
    """The fixed-predictor rejection surrogate as a module (see :func:`rejection_surrogate`)."""

    def __init__(self, c: float = 0.1, alpha: float = 4.0, beta: float | None = None, reduction: str = "mean",
                 ignore_index: int = -100) -> None:
        super().__init__()
        rejection_surrogate(torch.zeros(1), torch.ones(1, dtype=torch.long), c, alpha, beta, reduction)  # validate
        self.c, self.alpha, self.beta, self.reduction, self.ignore_index = c, alpha, beta, reduction, ignore_index

    def forward(self, r: Tensor, correct: Tensor) -> Tensor:
        return rejection_surrogate(r, correct, self.c, self.alpha, self.beta, self.reduction, self.ignore_index)

    def extra_repr(self) -> str:
        return f"c={self.c}, alpha={self.alpha}, beta={self.beta}"


# A binary score with 0/1 targets: the per-class weight, masked-logit and spatial tests address
# class-index inputs; a rejection cost already weighs the two kinds of error (no `weight`).
LOSS_CASES = [
    LossCase("rejection_surrogate", RejectionSurrogateLoss, {"c": 0.2, "alpha": 2.0}, function=rejection_surrogate,
             target="binary", weight=False, masked_logits=False, spatial=False),
]
