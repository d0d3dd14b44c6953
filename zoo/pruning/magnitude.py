r"""Gradual magnitude pruning (GMP), the baseline PDP is compared with.

Michael Zhu, Suyog Gupta. "To prune, or not to prune: exploring the efficacy of pruning for
model compression", 2017. https://arxiv.org/abs/1710.01878

Every ``frequency`` steps between ``begin_step`` (:math:`t_0`) and ``end_step``
(:math:`t_0 + n\Delta t`) the smallest-magnitude weights are masked to zero, with the sparsity
following the paper's cubic schedule (its eq. 1)

.. math:: s_t = s_f + (s_i - s_f)\Big(1 - \frac{t - t_0}{n \Delta t}\Big)^3,

from :math:`s_i = 0` to the final :math:`s_f`: it prunes fast early and slowly near the end.
Masked weights stay at zero: the mask multiplies them (so they get no gradient), and each pruning
step ranks the *masked* weights, so a pruned weight has magnitude 0 and is pruned again whatever
its stored value drifted to (momentum, weight decay). Unlike PDP, a pruned weight cannot come back.

``allocation="global"`` ranks all layers' weights together at each pruning step (one global
threshold, :func:`zoo.pruning.structure.global_shares`); ``"uniform"`` prunes each layer to
:math:`s_t`. For N:M the number pruned per group of M rises with :math:`s_t`, as
:math:`\operatorname{round}(s_t M)` up to :math:`M - N`
(:func:`zoo.pruning.structure.nm_pruned_per_group`, the same map PDP uses, so 1:4 passes through
3:4 and 2:4 in both methods); for channels, whole rows are ranked by their norm.

The mask is a fixed ``{0, 1}`` buffer: the forward pass is one multiplication, with no host sync;
the ranking (and its one sync for the global allocation) happens only at pruning steps.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from zoo.pruning.structure import (
    NM,
    Structure,
    Unstructured,
    fold_parametrization,
    global_shares,
    hard_mask_at,
    parametrization_input,
    parse_structure,
    prunable,
)

__all__ = ["MagnitudeMask", "GradualMagnitudePruning", "cubic_sparsity", "harden_magnitude"]


def cubic_sparsity(step: int, final: float, begin_step: int, end_step: int, initial: float = 0.0) -> float:
    """Zhu & Gupta's cubic schedule :math:`s_t` (eq. 1), clamped outside ``[begin, end]``."""
    if step < begin_step:
        return initial
    if step >= end_step:
        return final
    frac = (step - begin_step) / (end_step - begin_step)
    return final + (initial - final) * (1.0 - frac) ** 3


class MagnitudeMask(nn.Module):
    """Parametrization ``W -> mask * W`` with a fixed {0, 1} ``mask`` buffer."""

    def __init__(self, shape: torch.Size, device: torch.device | None = None) -> None:
        super().__init__()
        self.register_buffer("mask", torch.ones(shape, device=device))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


class GradualMagnitudePruning:
    """Attach magnitude masks to ``model``'s Linear/Conv2d layers and prune on Zhu & Gupta's schedule.

    Call :meth:`step` with the global step before each optimizer step.
    """

    def __init__(
        self,
        model: nn.Module,
        target: float,
        begin_step: int,
        end_step: int,
        frequency: int = 100,
        structure: Structure | str = "unstructured",
        allocation: str = "global",
        skip: Iterable[str] = (),
    ) -> None:
        if allocation not in ("global", "uniform"):
            raise ValueError(f"allocation must be 'global' or 'uniform', got {allocation!r}")
        self.structure = parse_structure(structure)
        self.target = self.structure.sparsity if isinstance(self.structure, NM) else float(target)
        self.begin_step, self.end_step, self.frequency = begin_step, max(end_step, begin_step + 1), max(1, frequency)
        self.allocation = allocation
        skip = set(skip)
        self.layers = [m for n, m in prunable(model) if n not in skip]
        self.masks: list[MagnitudeMask] = []
        for layer in self.layers:
            mask = MagnitudeMask(layer.weight.shape, layer.weight.device)
            parametrize.register_parametrization(layer, "weight", mask)
            self.masks.append(mask)
        self.sparsity = 0.0  # the schedule's current s_t

    def _masked_weights(self) -> list[torch.Tensor]:
        # What each mask receives, times the mask: pruned weights rank as 0, so they stay pruned.
        return [parametrization_input(layer, "weight", m) * m.mask for layer, m in zip(self.layers, self.masks)]

    @torch.no_grad()
    def prune_to(self, sparsity: float) -> None:
        """Set every mask for overall ``sparsity`` (of the target structure) by magnitude."""
        weights = self._masked_weights()
        if isinstance(self.structure, Unstructured) and self.allocation == "global":
            shares = global_shares(weights, sparsity)
        else:
            shares = [sparsity] * len(weights)
        for w, share, mask in zip(weights, shares, self.masks):
            mask.mask.copy_(hard_mask_at(w, share, self.structure))
        self.sparsity = sparsity

    def step(self, step: int, total_steps: int | None = None) -> None:
        """Prune if ``step`` is a pruning step of the schedule (signature fits ``train(before_step=)``)."""
        if step < self.begin_step or step > self.end_step:
            return
        if (step - self.begin_step) % self.frequency and step != self.end_step:
            return
        self.prune_to(cubic_sparsity(step, self.target, self.begin_step, self.end_step))


@torch.no_grad()
def harden_magnitude(model: nn.Module) -> nn.Module:
    """Fold the masks into the weights (real zeros) and remove only the :class:`MagnitudeMask` parametrizations.

    Other parametrizations of a weight stay registered (see
    :func:`zoo.pruning.structure.fold_parametrization`); a weight that carried only the mask is a
    plain parameter of a plain ``nn.Linear``/``nn.Conv2d`` again.
    """
    for _, layer in prunable(model):
        if not parametrize.is_parametrized(layer, "weight"):
            continue
        for mask in [p for p in layer.parametrizations.weight if isinstance(p, MagnitudeMask)]:
            fold_parametrization(layer, "weight", mask, mask(parametrization_input(layer, "weight", mask)))
    return model
