r"""Selective (relevance-aware) weight decay, after Bonetta, Ribero & Cancelliere.

"Regularization-based Pruning of Irrelevant Weights in Deep Neural Architectures", Applied
Intelligence 2023. https://arxiv.org/abs/2204.04977

Weight decay is applied only to the weights judged *irrelevant* to the loss; relevant weights get
the ordinary update. After each optimizer step

.. math::

    w \leftarrow w - \lambda\, w\, \mathbb 1[r(w) < \tau_\ell], \qquad
    r(w) = \Big| w\, \frac{\partial L}{\partial w} \Big|,

where :math:`\tau_\ell` is the ``quantile`` of the relevances of layer :math:`\ell` (the
``quantile`` least relevant weights of each layer decay), and an iterative magnitude pruning
schedule removes the weights the decay has driven towards zero. ``relevance="grad"`` uses
:math:`|\partial L/\partial w|` instead.

Departures: the relevance score here is the first-order Taylor estimate of the loss change when
the weight is removed, with a per-layer quantile threshold; the paper's exact relevance definition
and threshold were not checked against its text in this session (see the spec), so this is our
reading of "identify non-relevant weights and selectively shrink their norm". Pruning is
:class:`zoo.pruning.magnitude.GradualMagnitudePruning`'s schedule to a fixed target.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.pruning.lobster import raw_weight
from zoo.pruning.structure import prunable

__all__ = ["SelectiveWeightDecay", "irrelevant_mask"]


def irrelevant_mask(weight: torch.Tensor, grad: torch.Tensor, quantile: float, relevance: str = "taylor") -> torch.Tensor:
    """``True`` where the weight's relevance is below the tensor's ``quantile`` of relevances."""
    r = (weight * grad).abs() if relevance == "taylor" else grad.abs()
    k = int(quantile * r.numel())
    if k <= 0:
        return torch.zeros_like(r, dtype=torch.bool)
    tau = r.flatten().kthvalue(k).values
    return r <= tau


class SelectiveWeightDecay:
    """Decay only the irrelevant weights of ``model``'s Linear/Conv2d layers; call :meth:`step` after each optimizer step."""

    def __init__(self, model: nn.Module, lmbda: float, quantile: float = 0.5, relevance: str = "taylor") -> None:
        if relevance not in ("taylor", "grad"):
            raise ValueError(f"relevance must be 'taylor' or 'grad', got {relevance!r}")
        self.model, self.lmbda, self.quantile, self.relevance = model, float(lmbda), float(quantile), relevance

    @torch.no_grad()
    def step(self) -> None:
        for _, layer in prunable(self.model):
            p = raw_weight(layer)
            if p.grad is None:
                continue
            m = irrelevant_mask(p, p.grad, self.quantile, self.relevance)
            p.sub_(self.lmbda * p * m)
