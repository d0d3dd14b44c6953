r"""PDP: Parameter-free Differentiable Pruning.

Minsik Cho, Saurabh Adya, Devang Naik. "PDP: Parameter-free Differentiable Pruning is All You
Need", NeurIPS 2023. https://arxiv.org/abs/2305.11203

PDP prunes during training with a *soft* mask computed from the weights themselves: no mask
parameters, no extra losses. For a weight tensor :math:`W` and a target sparsity :math:`r`, a
threshold :math:`t` is placed half-way between the largest magnitude that the target would prune
and the smallest it would keep,

.. math:: t = \tfrac12 \big( \max_{w \in Z} |w| + \min_{w \in M} |w| \big),

where :math:`Z` are the :math:`\lceil r n \rceil`-smallest-magnitude weights and :math:`M` the
rest. Each weight gets the probability of being kept from a two-way softmax over
:math:`(t^2, w^2)` at temperature :math:`\tau`,

.. math:: m(w) = \frac{e^{w^2/\tau}}{e^{w^2/\tau} + e^{t^2/\tau}} = \sigma\!\big((w^2 - t^2)/\tau\big),

and the layer computes with :math:`\tilde W = m(W) \odot W`. So :math:`m(t) = 1/2`, weights well
above the threshold pass almost unchanged, and every weight, pruned or not, still receives the
gradient :math:`\partial L/\partial w = \partial L/\partial \tilde w \, (m + 2 w^2 m (1-m)/\tau)`,
which lets a pruned weight grow back. The threshold is a statistic of :math:`W` and is not
differentiated (it is recomputed from the current weights at every forward pass).

Structured variants change only who competes for the budget (see :mod:`zoo.pruning.structure`):
N:M places one threshold per group of :math:`M` weights between the :math:`N`-th and
:math:`(N{+}1)`-th largest; channel pruning scores an output channel by :math:`\lVert w_c \rVert^2`.

Schedule (the paper's appendix): train dense for a warm-up, then fix each layer's share of the
global budget by ranking all weights together (:func:`global_allocation`), and raise the layers'
sparsity gradually to their targets (:class:`PDPSchedule`). :func:`harden` finally replaces the
soft mask by the exact top-k mask, exporting real zeros.

Usage::

    model = MLP(784, [300, 100], 10)
    pruner = PDP(model, target=0.9, tau=1e-4)          # registers the parametrizations
    schedule = PDPSchedule(warmup_steps=500, ramp_steps=1000)
    ... before each optimizer step: pruner.set_progress(schedule(step))
    harden(model)                                      # exact zeros, plain nn.Linear again
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from zoo.pruning.structure import NM, Channel, Structure, hard_mask, nm_groups, parse_structure, rows

__all__ = ["PDPMask", "PDP", "PDPSchedule", "pdp_threshold", "pdp_mask", "global_allocation", "harden", "prunable"]


def prunable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``nn.Linear`` and ``nn.Conv2d`` layers of ``model``, by name (their ``weight`` is pruned)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _midpoint_threshold(scores: torch.Tensor, n_prune: int) -> torch.Tensor:
    """Squared threshold half-way (in magnitude) between the last pruned and first kept score.

    ``scores`` are squared magnitudes along the last dimension; the result keeps that dimension
    with size 1. ``n_prune`` of the last dimension fall below it.
    """
    n = scores.shape[-1]
    if n_prune <= 0:
        return torch.full_like(scores[..., :1], -1.0)  # below every score: keep all
    if n_prune >= n:
        return scores.amax(-1, keepdim=True) + 1.0  # above every score: prune all
    # The n_prune-th smallest by one selection (no sort); the next one up is the smallest score
    # above it, unless ties put more than n_prune scores at or below it.
    low2 = scores.kthvalue(n_prune, dim=-1, keepdim=True).values
    above = torch.where(scores > low2, scores, torch.full_like(scores, float("inf"))).amin(-1, keepdim=True)
    tied = (scores <= low2).sum(-1, keepdim=True) > n_prune
    high2 = torch.where(tied | torch.isinf(above), low2, above)
    t = 0.5 * (low2.sqrt() + high2.sqrt())
    return t.square()


def pdp_threshold(weight: torch.Tensor, sparsity: float, structure: Structure) -> torch.Tensor:
    """The squared threshold :math:`t^2`, broadcastable against the structure's scores."""
    w2 = weight.detach().square()
    if isinstance(structure, NM):
        return _midpoint_threshold(nm_groups(w2, structure.m), structure.m - structure.n)
    if isinstance(structure, Channel):
        score = rows(w2).sum(1)
        return _midpoint_threshold(score, round(sparsity * score.numel()))
    flat = w2.reshape(-1)
    return _midpoint_threshold(flat, round(sparsity * flat.numel()))


def pdp_mask(weight: torch.Tensor, sparsity: float, tau: float, structure: Structure) -> torch.Tensor:
    r"""The soft mask :math:`m(W) = \sigma((W^2 - t^2)/\tau)` (differentiable in ``weight``)."""
    t2 = pdp_threshold(weight, sparsity, structure)
    if isinstance(structure, NM):
        g = nm_groups(weight, structure.m)
        return torch.sigmoid((g.square() - t2) / tau).reshape(weight.shape)
    if isinstance(structure, Channel):
        score = rows(weight).square().sum(1)
        m = torch.sigmoid((score - t2) / tau)
        return m.reshape(-1, *([1] * (weight.dim() - 1))).expand_as(weight)
    return torch.sigmoid((weight.square() - t2) / tau)


class PDPMask(nn.Module):
    """A ``torch.nn.utils.parametrize`` parametrization: ``W -> m(W) * W``.

    ``sparsity`` is the layer's current target (a buffer so it is saved with the model and moves
    with it); ``0`` turns the mask off entirely (dense warm-up). For N:M the structure fixes the
    sparsity and ``sparsity > 0`` only switches the mask on.
    """

    def __init__(self, structure: Structure | str = "unstructured", tau: float = 1e-4, sparsity: float = 0.0) -> None:
        super().__init__()
        self.structure = parse_structure(structure)
        self.tau = float(tau)
        self.register_buffer("sparsity", torch.tensor(float(sparsity)))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        s = float(self.sparsity)
        if s <= 0.0:
            return weight
        return pdp_mask(weight, s, self.tau, self.structure) * weight

    def extra_repr(self) -> str:
        return f"structure={self.structure}, tau={self.tau:g}, sparsity={float(self.sparsity):.4f}"


def global_allocation(layers: Iterable[nn.Module], target: float) -> list[float]:
    """Per-layer sparsities such that one global magnitude threshold prunes ``target`` overall.

    The paper fixes each layer's share this way at the end of warm-up, so that layers with
    many small weights (typically the large ones) give up more than small, critical layers.
    """
    weights = [m.weight.detach() for m in layers]
    all_w2 = torch.cat([w.square().reshape(-1) for w in weights])
    k = round(target * all_w2.numel())
    if k == 0:
        return [0.0] * len(weights)
    t2 = all_w2.kthvalue(k).values
    return [float((w.square() <= t2).sum()) / w.numel() for w in weights]


@dataclass(frozen=True)
class PDPSchedule:
    """Fraction of each layer's target reached at a step: 0 during warm-up, then a linear ramp."""

    warmup_steps: int
    ramp_steps: int

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return 0.0
        if self.ramp_steps <= 0:
            return 1.0
        return min(1.0, (step - self.warmup_steps + 1) / self.ramp_steps)


class PDP:
    """Attach PDP soft masks to every prunable layer of ``model`` and drive their sparsity.

    Args:
        model: any module; its ``nn.Linear``/``nn.Conv2d`` weights get a :class:`PDPMask`.
        target: overall target sparsity (ignored for N:M, whose sparsity is ``1 - N/M``).
        structure: ``"unstructured"``, ``"channel"`` or ``"N:M"``.
        tau: temperature :math:`\\tau` of the soft mask (in units of squared weight).
        allocation: ``"global"`` (the paper: per-layer shares from a global ranking, fixed when
            pruning starts) or ``"uniform"`` (every layer at ``target``).
        skip: names of layers to leave dense.
    """

    def __init__(
        self,
        model: nn.Module,
        target: float,
        structure: Structure | str = "unstructured",
        tau: float = 1e-4,
        allocation: str = "global",
        skip: Iterable[str] = (),
    ) -> None:
        if not 0.0 <= target < 1.0:
            raise ValueError(f"target sparsity must be in [0, 1), got {target}")
        if allocation not in ("global", "uniform"):
            raise ValueError(f"allocation must be 'global' or 'uniform', got {allocation!r}")
        self.model = model
        self.structure = parse_structure(structure)
        self.target = self.structure.sparsity if isinstance(self.structure, NM) else float(target)
        self.allocation = allocation
        skip = set(skip)
        self.layers = [m for n, m in prunable(model) if n not in skip]
        self.masks: list[PDPMask] = []
        for layer in self.layers:
            mask = PDPMask(self.structure, tau)
            parametrize.register_parametrization(layer, "weight", mask)
            self.masks.append(mask)
        self.layer_targets: list[float] | None = None

    def _allocate(self) -> list[float]:
        if isinstance(self.structure, NM):
            return [self.target] * len(self.layers)
        if self.allocation == "uniform" or isinstance(self.structure, Channel):
            return [self.target] * len(self.layers)
        originals = [_Original(layer) for layer in self.layers]
        return global_allocation(originals, self.target)

    @torch.no_grad()
    def set_progress(self, fraction: float) -> None:
        """Set every layer to ``fraction`` of its target; the first non-zero call fixes the shares."""
        if fraction > 0 and self.layer_targets is None:
            self.layer_targets = self._allocate()
        for i, mask in enumerate(self.masks):
            tgt = 0.0 if self.layer_targets is None else self.layer_targets[i]
            mask.sparsity.fill_(fraction * tgt if not isinstance(self.structure, NM) else (tgt if fraction > 0 else 0.0))

    def sparsities(self) -> list[float]:
        return [float(m.sparsity) for m in self.masks]


class _Original:
    """Expose a parametrized layer's raw weight as ``.weight`` (for allocation)."""

    def __init__(self, layer: nn.Module) -> None:
        self.weight = layer.parametrizations.weight.original


@torch.no_grad()
def harden(model: nn.Module) -> nn.Module:
    r"""Replace every :class:`PDPMask` by the exact hard top-k mask and remove the parametrization.

    The exported weight is :math:`m(W) \odot W` with the units below the target zeroed.

    Each layer ends with real zeros at exactly its current target (``round(s * count)`` weights or
    channels; exactly N of every M for N:M), as plain ``nn.Linear``/``nn.Conv2d`` weights.
    """
    for _, layer in prunable(model):
        if not parametrize.is_parametrized(layer, "weight"):
            continue
        plist = layer.parametrizations.weight
        masks = [p for p in plist if isinstance(p, PDPMask)]
        if not masks:
            continue
        mask = masks[0]
        s = float(mask.sparsity)
        # |m(w) w| grows with |w|, so ranking the raw weights ranks the masked ones too.
        keep = hard_mask(plist.original, s, mask.structure) if s > 0 else None
        # Keep the soft-masked values the network was trained with, then make the zeros exact.
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
        if keep is not None:
            layer.weight.mul_(keep)
    return model
