"""Random sparse masks fixed before training, with Erdős–Rényi(-Kernel) or uniform layer-wise densities.

Liu et al. 2022, *The Unreasonable Effectiveness of Random Pruning* (ICLR): remove connections
uniformly at random *before* training and train the sparse network from scratch, the mask fixed
throughout. What decides how well it does is the layer-wise density allocation:

* **uniform**: every layer keeps the same fraction ``1 - s`` of its weights;
* **ERK** (Evci et al. 2020, RigL; Mocanu et al. 2018 for the ER form): layer ``l`` with weight
  shape ``(n_out, n_in[, k_h, k_w])`` keeps the fraction

  .. math:: d_l = \\min\\Big(1,\\ \\varepsilon\\, \\frac{n_{out} + n_{in} + k_h + k_w}{n_{out}\\, n_{in}\\, k_h\\, k_w}\\Big)

  (for a Linear layer the kernel terms vanish: ``(n_in + n_out) / (n_in n_out)``, plain ER),
  with the single scale ``ε`` chosen so the kept count ``Σ_l d_l N_l`` equals ``(1 - s) Σ_l N_l``.
  Layers whose density would exceed 1 are made dense and ``ε`` is solved again over the rest
  (the RigL reference implementation's loop).

Within a layer the kept positions are a uniformly random subset of exactly ``round(d_l N_l)``
weights (the reference draws Bernoulli masks; an exact count makes the sparsity exact). Biases
stay dense, as in the paper. :class:`FixedMask` keeps the masked weights at zero during training
by zeroing them and their gradients (so Adam's moments of a pruned weight stay zero and the weight
never moves); :func:`harden` leaves plain layers whose zeros the export stores as CSR.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

__all__ = ["prunable_layers", "erk_densities", "uniform_densities", "random_masks", "FixedMask", "harden"]


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every Linear / Conv2d of ``model`` (the classifier included, as in the paper's ERK)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _erk_score(shape: torch.Size) -> float:
    return float(sum(shape)) / float(torch.Size(shape).numel())


def erk_densities(shapes: list[torch.Size], sparsity: float, max_iter: int = 100) -> list[float]:
    """Per-layer densities of ERK at overall ``sparsity`` (fraction of weights removed)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    sizes = [float(torch.Size(s).numel()) for s in shapes]
    scores = [_erk_score(s) for s in shapes]
    target = (1.0 - sparsity) * sum(sizes)
    dense: set[int] = set()
    for _ in range(max_iter):
        budget = target - sum(sizes[i] for i in dense)
        denom = sum(scores[i] * sizes[i] for i in range(len(shapes)) if i not in dense)
        eps = budget / denom if denom > 0 else 0.0
        over = {i for i in range(len(shapes)) if i not in dense and eps * scores[i] > 1.0}
        if not over:
            return [1.0 if i in dense else eps * scores[i] for i in range(len(shapes))]
        dense |= over
    raise RuntimeError("ERK allocation did not converge")


def uniform_densities(shapes: list[torch.Size], sparsity: float) -> list[float]:
    """Every layer at the same density ``1 - sparsity``."""
    return [1.0 - sparsity for _ in shapes]


def random_masks(model: nn.Module, sparsity: float, allocation: str = "erk",
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """``{layer name: 0/1 mask of its weight}``: a uniformly random exact-count subset per layer."""
    layers = prunable_layers(model)
    shapes = [m.weight.shape for _, m in layers]
    if allocation == "erk":
        dens = erk_densities(shapes, sparsity)
    elif allocation == "uniform":
        dens = uniform_densities(shapes, sparsity)
    else:
        raise ValueError(f"unknown allocation {allocation!r}: use erk or uniform")
    out = {}
    for (name, m), d in zip(layers, dens):
        n = m.weight.numel()
        keep = int(round(d * n))
        perm = torch.randperm(n, generator=generator)
        mask = torch.zeros(n)
        mask[perm[:keep]] = 1.0
        out[name] = mask.view_as(m.weight).to(m.weight.device, m.weight.dtype)
    return out


class FixedMask:
    """A fixed weight mask applied to ``model``: zero the masked weights now, their gradients and values every step."""

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
        mods = dict(model.named_modules())
        self.pairs = [(mods[n].weight, m) for n, m in masks.items()]
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        for w, m in self.pairs:
            w.mul_(m)

    @torch.no_grad()
    def mask_grads(self) -> None:
        for w, m in self.pairs:
            if w.grad is not None:
                w.grad.mul_(m)

    def density(self) -> float:
        kept = sum(float(m.sum()) for _, m in self.pairs)
        return kept / sum(m.numel() for _, m in self.pairs)


def harden(model: nn.Module, masks: dict[str, torch.Tensor] | Iterable = ()) -> nn.Module:
    """Zero the masked weights for good (they already are, if :class:`FixedMask` ran); layers stay plain."""
    mods = dict(model.named_modules())
    with torch.no_grad():
        for n, m in dict(masks).items():
            mods[n].weight.mul_(m)
    return model


def random_node_masks(model: nn.Module, sparsity: float, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """``{parameter name: 0/1 mask}`` removing a random ``sparsity`` fraction of every hidden layer's units.

    For the Linear layers of an MLP in order, a removed unit of layer ``l`` zeroes row ``j`` of
    its weight and bias ``j`` and column ``j`` of layer ``l + 1``'s weight (the classifier's units
    are never removed). The export's shrink then drops the dead units for real.
    """
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    masks = {f"{n}.weight" if n else "weight": torch.ones_like(m.weight) for n, m in layers}
    for n, m in layers:
        if m.bias is not None:
            masks[f"{n}.bias"] = torch.ones_like(m.bias)
    for (n, m), (n2, _) in zip(layers[:-1], layers[1:]):
        units = m.out_features
        drop = torch.randperm(units, generator=generator)[: int(round(sparsity * units))].to(m.weight.device)
        masks[f"{n}.weight"][drop, :] = 0.0
        if m.bias is not None:
            masks[f"{n}.bias"][drop] = 0.0
        masks[f"{n2}.weight"][:, drop] = 0.0
    return masks


class ParamMask:
    """Like :class:`FixedMask`, keyed by parameter name (weights and biases)."""

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
        params = dict(model.named_parameters())
        self.pairs = [(params[n], m) for n, m in masks.items()]
        self.apply()

    apply = FixedMask.apply
    mask_grads = FixedMask.mask_grads
    density = FixedMask.density
