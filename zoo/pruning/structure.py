r"""What the pruning methods share: sparsity structures, hard masks, the global per-layer
allocation, the N:M ramp, and the parametrization plumbing (find a mask's input, fold it away).

PDP (:mod:`zoo.pruning.pdp`) and gradual magnitude pruning (:mod:`zoo.pruning.magnitude`) both
import from here and never from each other, so the two arms of a comparison use one definition
of "which weights compete", "how the budget is split over layers" and "how N:M ramps".

A structure says what a mask zeroes and among which weights the budget is shared:

* :class:`Unstructured` - single weights, ranked across the whole tensor;
* :class:`NM` - N:M sparsity: in every group of ``m`` consecutive input weights of an output
  unit (row of the weight viewed as ``[out, in * kh * kw]``) keep the ``n`` largest;
* :class:`Channel` - whole output channels (rows), ranked by their squared L2 norm.

Scores are squared magnitudes, as in PDP (the mask compares ``w^2`` with ``t^2``).

**N:M during the ramp.** A layer's current sparsity :math:`s` (a fraction of its final
:math:`1 - N/M`) sets how many weights of every group of :math:`M` are pruned,

.. math:: k(s) = \min\big(M - N,\ \operatorname{round}(s M)\big),

so a 1:4 target passes through 4:4 (dense), 3:4, 2:4 and ends at 1:4 as :math:`s` rises to
:math:`3/4` (:func:`nm_pruned_per_group`). Both methods map their schedule's current sparsity
through this one function, so at equal progress they prune the same number per group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = [
    "Structure", "Unstructured", "NM", "Channel", "parse_structure", "hard_mask", "hard_mask_at",
    "nm_pruned_per_group", "sparsity_of", "prunable", "global_allocation", "global_shares",
    "parametrization_input", "fold_parametrization",
]


@dataclass(frozen=True)
class Unstructured:
    def __str__(self) -> str:
        return "unstructured"


@dataclass(frozen=True)
class NM:
    n: int
    m: int

    def __post_init__(self) -> None:
        if not 0 < self.n < self.m:
            raise ValueError(f"N:M needs 0 < N < M, got {self.n}:{self.m}")

    @property
    def sparsity(self) -> float:
        return 1.0 - self.n / self.m

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"


@dataclass(frozen=True)
class Channel:
    def __str__(self) -> str:
        return "channel"


Structure = Unstructured | NM | Channel


def parse_structure(s: str | Structure) -> Structure:
    """``"unstructured"``, ``"channel"`` or ``"N:M"`` (e.g. ``"1:4"``)."""
    if not isinstance(s, str):
        return s
    if s == "unstructured":
        return Unstructured()
    if s == "channel":
        return Channel()
    if ":" in s:
        n, m = s.split(":")
        return NM(int(n), int(m))
    raise ValueError(f"unknown sparsity structure {s!r}; use 'unstructured', 'channel' or 'N:M' like '1:4'")


def prunable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``nn.Linear`` and ``nn.Conv2d`` layers of ``model``, by name (their ``weight`` is pruned)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def rows(weight: torch.Tensor) -> torch.Tensor:
    """The weight as ``[out, fan_in]`` (a view for contiguous Linear/Conv weights)."""
    return weight.reshape(weight.shape[0], -1)


def nm_groups(weight: torch.Tensor, m: int) -> torch.Tensor:
    """The weight as ``[out, fan_in / m, m]`` groups of consecutive input weights."""
    r = rows(weight)
    if r.shape[1] % m:
        raise ValueError(f"N:M with M={m} needs fan-in divisible by {m}; weight has fan-in {r.shape[1]}")
    return r.reshape(r.shape[0], -1, m)


def nm_pruned_per_group(structure: NM, sparsity: float) -> int:
    r"""How many of every ``m`` weights are pruned at current sparsity ``sparsity``: :math:`k(s)`.

    ``round(sparsity * m)``, clipped to ``[0, m - n]``: the final ``1 - n/m`` prunes ``m - n``.
    """
    return max(0, min(structure.m - structure.n, round(sparsity * structure.m)))


def _scatter_keep(scores: torch.Tensor, n_keep: int) -> torch.Tensor:
    """{0, 1} of ``scores``' shape, 1 at the ``n_keep`` largest along the last dim (no host sync)."""
    keep = torch.zeros_like(scores)
    if n_keep <= 0:
        return keep
    return keep.scatter_(-1, scores.topk(n_keep, dim=-1).indices, 1.0)


def hard_mask(weight: torch.Tensor, sparsity: float, structure: Structure) -> torch.Tensor:
    """A {0, 1} mask of ``weight``'s shape keeping the largest-magnitude weights.

    Exactly ``round(sparsity * count)`` units are zeroed (units are weights or channels); for
    :class:`NM` exactly ``n`` of every ``m`` are kept and ``sparsity`` is ignored (the final
    pattern; :func:`hard_mask_at` follows the ramp). Ties are broken by ``topk``, so the count is
    exact even with equal magnitudes.
    """
    w2 = weight.detach().square()
    if isinstance(structure, NM):
        g = nm_groups(w2, structure.m)
        return _scatter_keep(g, structure.n).reshape(weight.shape)
    if isinstance(structure, Channel):
        score = rows(w2).sum(1)
        keep = _scatter_keep(score, score.numel() - round(sparsity * score.numel()))
        return keep.reshape(-1, *([1] * (weight.dim() - 1))).expand_as(weight).clone()
    flat = w2.reshape(-1)
    return _scatter_keep(flat, flat.numel() - round(sparsity * flat.numel())).reshape(weight.shape)


def hard_mask_at(weight: torch.Tensor, sparsity: float, structure: Structure) -> torch.Tensor:
    """:func:`hard_mask` at current sparsity ``sparsity``, N:M included.

    For :class:`NM` keeps ``m - nm_pruned_per_group(structure, sparsity)`` of every ``m``
    (all of them at the start of the ramp, ``n`` at its end); otherwise as :func:`hard_mask`.
    """
    if isinstance(structure, NM):
        k = nm_pruned_per_group(structure, sparsity)
        g = nm_groups(weight.detach().square(), structure.m)
        return _scatter_keep(g, structure.m - k).reshape(weight.shape)
    return hard_mask(weight, sparsity, structure)


def global_shares(weights: Sequence[torch.Tensor], target: float) -> list[float]:
    """Per-tensor sparsities such that one global magnitude threshold prunes ``target`` overall.

    The ``k = round(target * total)`` smallest magnitudes over all tensors together are pruned
    (ties broken by a global ``topk``, so the total is exact); each tensor's share is the
    fraction of its weights among them. One host sync for all tensors (``tolist``), not one per
    tensor: this runs once per pruning update, never in a forward pass.
    """
    weights = [w.detach() for w in weights]
    sizes = [w.numel() for w in weights]
    all_w2 = torch.cat([w.square().reshape(-1) for w in weights])
    k = round(target * all_w2.numel())
    if k <= 0:
        return [0.0] * len(weights)
    pruned = torch.zeros_like(all_w2).scatter_(0, all_w2.topk(k, largest=False).indices, 1.0)
    counts = torch.stack([part.sum() for part in pruned.split(sizes)]).tolist()
    return [c / n for c, n in zip(counts, sizes)]


def global_allocation(layers: Iterable[nn.Module | torch.Tensor], target: float) -> list[float]:
    """Per-layer sparsities such that one global magnitude threshold prunes ``target`` overall.

    ``layers`` are modules (their ``.weight``) or weight tensors. The paper fixes each layer's
    share this way at the end of warm-up, so that layers with many small weights (typically the
    large ones) give up more than small, critical layers.
    """
    return global_shares([x if isinstance(x, torch.Tensor) else x.weight for x in layers], target)


def sparsity_of(weight: torch.Tensor) -> float:
    """Fraction of exact zeros."""
    return float((weight == 0).sum()) / weight.numel()


# --- parametrization plumbing -------------------------------------------------------------


def _position(module: nn.Module, name: str, p: nn.Module) -> int:
    for i, q in enumerate(module.parametrizations[name]):
        if q is p:
            return i
    raise ValueError(f"{type(p).__name__} is not a parametrization of {name!r}")


def parametrization_input(module: nn.Module, name: str, p: nn.Module) -> torch.Tensor:
    """The tensor parametrization ``p`` receives in ``module.<name>``'s chain, detached.

    That is the raw ``original`` when ``p`` comes first, else the output of the
    parametrizations registered before it (e.g. weight norm): what ``p`` actually masks.
    """
    plist = module.parametrizations[name]
    chain = list(plist)
    idx = _position(module, name, p)
    with torch.no_grad():
        if plist.is_tensor:
            x = plist.original
            for q in chain[:idx]:
                x = q(x)
        else:
            if idx == 0:
                raise TypeError(f"{type(p).__name__} cannot take the {plist.ntensors} tensors of a split original")
            x = chain[0](*(getattr(plist, f"original{i}") for i in range(plist.ntensors)))
            for q in chain[1:idx]:
                x = q(x)
    return x.detach()


@torch.no_grad()
def fold_parametrization(module: nn.Module, name: str, p: nn.Module, value: torch.Tensor) -> None:
    """Remove ``p`` (and only ``p``) from ``module.<name>``'s chain, baking ``value`` in as its output.

    Other parametrizations of the same tensor, before or after ``p``, stay registered and
    unchanged; those before ``p`` receive ``value`` through their ``right_inverse`` (as
    ``torch.nn.utils.parametrize`` does for an assignment), those after keep acting on it. When
    ``p`` was the only one, the tensor is a plain parameter again: the same ``Parameter`` object,
    so an optimizer holding it stays valid.
    """
    plist = module.parametrizations[name]
    chain = list(plist)
    idx = _position(module, name, p)
    if len(chain) == 1:
        plist.original.copy_(value)
        parametrize.remove_parametrizations(module, name, leave_parametrized=False)
        return
    tail = chain[idx + 1:]
    for _ in range(len(chain) - idx):  # drop p and everything after it ...
        del plist[len(plist) - 1]
    if idx == 0:
        plist.original.copy_(value)
    else:
        plist.right_inverse(value)  # ... write value through the head's right_inverse ...
    for q in tail:  # ... and put the tail back, in order
        plist.append(q)
