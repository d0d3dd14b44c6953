"""Random pruning at initialisation (Liu et al. 2022), scaled down: ERK random masks on MLPs of growing width.

Arms (:mod:`zoo.experiments._compressbench`, registered method ``random_mask``): ``dense`` and a
random ERK mask at each sparsity, trained from scratch (no pretraining) with the same optimizer,
schedule, epochs and batch order as the dense arm of its width; the mask is drawn once, after the
seed's initialisation, and fixed (masked weights and their gradients zeroed every step). The
``settings`` are the widths (``w1`` .. ``w8``: the hidden sizes times 1..8), so each arm reports
``w<k>_<metric>`` and ``w<k>_acc_drop`` is the gap to the dense model of the same width.
"""

from __future__ import annotations

from torch import nn

from zoo.experiments._compressbench import Method, compressbench, register
from zoo.pruning.random_masks import FixedMask, harden, random_masks

__all__ = ["RandomMask", "EXPERIMENT"]


@register("random_mask")
class RandomMask(Method):
    """A random mask fixed before training: ``sparsity`` overall, ``allocation`` erk or uniform."""

    defaults = {"sparsity": 0.9, "allocation": "erk"}

    def attach(self, model: nn.Module) -> nn.Module:
        self.masks = random_masks(model, float(self.opt["sparsity"]), str(self.opt["allocation"]))
        self.fixed = FixedMask(model, self.masks)
        return model

    def after_backward(self, model: nn.Module) -> None:
        self.fixed.mask_grads()

    def after_step(self, model: nn.Module) -> None:
        self.fixed.apply()

    def compress(self, model: nn.Module) -> nn.Module:
        return harden(model, self.masks)

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        return {"mask_density": self.fixed.density()}


EXPERIMENT = compressbench("random_pruning_sparse_training")
