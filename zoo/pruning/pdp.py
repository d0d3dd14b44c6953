r"""PDP: Parameter-free Differentiable Pruning.

Minsik Cho, Saurabh Adya, Devang Naik. "PDP: Parameter-free Differentiable Pruning is All You
Need", NeurIPS 2023. https://arxiv.org/abs/2305.11203

PDP prunes during training with a *soft* mask computed from the weights themselves: no mask
parameters, no extra losses. For a weight tensor :math:`W` and a target sparsity :math:`r`, a
threshold :math:`t` is placed half-way between the largest magnitude that the target would prune
and the smallest it would keep,

.. math:: t = \tfrac12 \big( \max_{w \in Z} |w| + \min_{w \in M} |w| \big),

where :math:`Z` are the :math:`\operatorname{round}(r n)` smallest-magnitude weights and
:math:`M` the rest. Each weight gets the probability of being kept from a two-way softmax over
:math:`(t^2, w^2)` at temperature :math:`\tau`,

.. math:: m(w) = \frac{e^{w^2/\tau}}{e^{w^2/\tau} + e^{t^2/\tau}} = \sigma\!\big((w^2 - t^2)/\tau\big),
          \qquad z(w) = 1 - m(w),

and the layer computes with :math:`\tilde W = m(W) \odot W`. So :math:`m(t) = 1/2`, weights well
above the threshold pass almost unchanged, smaller :math:`\tau` makes :math:`m` closer to a hard
0/1 step, and every weight, pruned or not, still receives the gradient (the paper's analysis, with
:math:`t` a constant of the step)

.. math:: \frac{\partial L}{\partial w} = \frac{\partial L}{\partial \tilde w}
          \Big( m(w) + \frac{2 w^2}{\tau}\, m(w)\, z(w) \Big),

which lets a pruned weight grow back. The threshold is a statistic of :math:`W`, recomputed from
the current weights at every forward pass and not differentiated (``detach``; this only matters
for the two weights that define it).

Structured variants change only who competes for the budget (see :mod:`zoo.pruning.structure`):
N:M places one threshold per group of :math:`M` weights between the :math:`k`-th and
:math:`(k{+}1)`-th smallest, :math:`k` the number pruned per group; channel pruning scores an
output channel by :math:`\lVert w_c \rVert^2`.

Schedule (the paper's training flow, its appendix): train dense for a warm-up, then fix each
layer's share of the global budget by ranking all weights together (:func:`global_allocation`),
and raise every layer's sparsity gradually to its target, :math:`r_e = \min(1, \epsilon e)\, r`
after warm-up (:class:`PDPSchedule`: the same linear ramp, per step instead of per epoch).
:func:`harden` finally replaces the soft mask by the exact top-k mask, exporting real zeros.

**N:M follows the same ramp** (our choice; the previous version of this module switched straight
from dense to N:M at the end of warm-up). The paper extends PDP to N:M only by changing where
the threshold is placed (one per group of :math:`M`) and, as far as we could check, gives N:M no
schedule of its own, so its gradual raise of the target applies; gradual magnitude pruning, the
baseline, ramps N:M as well. PDP's N:M therefore prunes :math:`k = \operatorname{round}(p\,(M-N))`
of every :math:`M` at progress :math:`p` (4:4, 3:4, 2:4, 1:4 for a 1:4 target;
:func:`zoo.pruning.structure.nm_pruned_per_group`, the map GMP uses too), and both arms of a
comparison pass through the same patterns at the same progress.

Departures: :math:`\operatorname{round}` rather than a ceiling for the pruned count (the exported
model then has exactly the target's count of zeros); the exported kept weights carry their soft
factor :math:`m(w)` (see :func:`harden`). No host synchronisation happens in the forward pass: the
current sparsity is a Python float updated by :meth:`PDP.set_progress`, and the threshold is
computed on the weights' device.

Usage::

    model = MLP(784, [300, 100], 10)
    pruner = PDP(model, target=0.9, tau=1e-4)          # registers the parametrizations
    schedule = PDPSchedule(warmup_steps=500, ramp_steps=1000)
    ... before each optimizer step: pruner.set_progress(schedule(step))
    harden(model)                                      # exact zeros, plain nn.Linear again
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from zoo.pruning.structure import (
    NM,
    Channel,
    Structure,
    fold_parametrization,
    global_allocation,
    global_shares,
    hard_mask_at,
    nm_groups,
    nm_pruned_per_group,
    parametrization_input,
    parse_structure,
    prunable,
    rows,
)

__all__ = ["PDPMask", "PDP", "PDPSchedule", "pdp_threshold", "pdp_mask", "global_allocation", "harden", "prunable"]


def _midpoint_threshold(scores: torch.Tensor, n_prune: int) -> torch.Tensor:
    """Squared threshold half-way (in magnitude) between the last pruned and first kept score.

    ``scores`` are squared magnitudes along the last dimension; the result keeps that dimension
    with size 1. ``n_prune`` of the last dimension fall below it. Tensor ops only (no host sync).
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
    """The squared threshold :math:`t^2` (detached), broadcastable against the structure's scores.

    For N:M, ``sparsity`` (at most ``1 - N/M``) sets the number pruned per group,
    :func:`~zoo.pruning.structure.nm_pruned_per_group`.
    """
    w2 = weight.detach().square()
    if isinstance(structure, NM):
        return _midpoint_threshold(nm_groups(w2, structure.m), nm_pruned_per_group(structure, sparsity))
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

    ``sparsity`` is the layer's current sparsity (for N:M: up to ``1 - N/M``, pruning
    ``round(sparsity * M)`` per group); ``0`` turns the mask off entirely (dense warm-up). It is
    kept twice: as a Python float read by :meth:`forward` (so a forward pass never syncs with the
    device) and as a buffer, saved with the model and restored on load. Change it with
    :meth:`set_sparsity`.
    """

    def __init__(self, structure: Structure | str = "unstructured", tau: float = 1e-4, sparsity: float = 0.0) -> None:
        super().__init__()
        self.structure = parse_structure(structure)
        self.tau = float(tau)
        self._sparsity = float(sparsity)
        self.register_buffer("sparsity", torch.tensor(self._sparsity))

    def set_sparsity(self, sparsity: float) -> None:
        """Set the current sparsity (no host sync: the buffer is filled, never read)."""
        self._sparsity = float(sparsity)
        self.sparsity.fill_(self._sparsity)

    @property
    def current_sparsity(self) -> float:
        return self._sparsity

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._sparsity = float(self.sparsity)  # one sync per load, never per forward

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        s = self._sparsity
        if s <= 0.0:
            return weight
        return pdp_mask(weight, s, self.tau, self.structure) * weight

    def extra_repr(self) -> str:
        return f"structure={self.structure}, tau={self.tau:g}, sparsity={self._sparsity:.4f}"


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
        model: any module; its ``nn.Linear``/``nn.Conv2d`` weights get a :class:`PDPMask`
            (appended to any parametrization the weight already has).
        target: overall target sparsity (ignored for N:M, whose final sparsity is ``1 - N/M``).
        structure: ``"unstructured"``, ``"channel"`` or ``"N:M"``.
        tau: temperature :math:`\\tau` of the soft mask (in units of squared weight).
        allocation: ``"global"`` (the paper: per-layer shares from a global ranking, fixed when
            pruning starts) or ``"uniform"`` (every layer at ``target``). Only unstructured
            pruning has a global ranking; N:M and channel pruning are per layer.
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
        if isinstance(self.structure, (NM, Channel)) or self.allocation == "uniform":
            return [self.target] * len(self.layers)
        inputs = [parametrization_input(layer, "weight", mask) for layer, mask in zip(self.layers, self.masks)]
        return global_shares(inputs, self.target)

    @torch.no_grad()
    def set_progress(self, fraction: float) -> None:
        """Set every layer to ``fraction`` of its target; the first non-zero call fixes the shares.

        N:M included: a layer at ``fraction`` of ``1 - N/M`` prunes ``round(fraction * (M - N))``
        of every ``M``. At most one host sync (the allocation, once), none afterwards.
        """
        fraction = float(fraction)
        if fraction > 0 and self.layer_targets is None:
            self.layer_targets = self._allocate()
        for i, mask in enumerate(self.masks):
            tgt = 0.0 if self.layer_targets is None else self.layer_targets[i]
            mask.set_sparsity(fraction * tgt)

    def sparsities(self) -> list[float]:
        return [m.current_sparsity for m in self.masks]


@torch.no_grad()
def harden(model: nn.Module) -> nn.Module:
    r"""Replace every :class:`PDPMask` by the exact hard top-k mask and remove that parametrization.

    The exported weight is :math:`\mathbb 1[\text{kept}] \odot m(W) \odot W`: the soft-masked
    values the network was trained with, with the units below the current target set to exact
    zeros (with a sharp :math:`\tau` the kept :math:`m(w)` are 1 and this is :math:`W` on the
    kept set). Each layer ends with real zeros at exactly its current sparsity
    (``round(s * count)`` weights or channels; ``M - round(s M)`` kept of every ``M`` for N:M,
    i.e. exactly N at the end of the ramp).

    Only PDP's own parametrization is removed: any other parametrization of the weight (weight
    norm, another library's) stays registered, receiving the hardened value through its
    ``right_inverse`` when it comes before the mask. A weight that carried only the PDP mask is a
    plain parameter of a plain ``nn.Linear``/``nn.Conv2d`` again.
    """
    for _, layer in prunable(model):
        if not parametrize.is_parametrized(layer, "weight"):
            continue
        for mask in [p for p in layer.parametrizations.weight if isinstance(p, PDPMask)]:
            u = parametrization_input(layer, "weight", mask)
            s = mask.current_sparsity
            value = mask(u)
            if s > 0:
                # |m(w) w| grows with |w| (per group / channel score too), so ranking u ranks the masked values.
                value = value * hard_mask_at(u, s, mask.structure)
            fold_parametrization(layer, "weight", mask, value)
    return model
