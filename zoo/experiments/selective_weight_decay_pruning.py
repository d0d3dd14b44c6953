"""Selective weight decay + iterative pruning vs GMP and GMP + plain weight decay (LeNet-300-100, MNIST-5k).

All pruned arms share the cubic magnitude-pruning schedule; ``swd`` adds the relevance-aware decay
of :class:`zoo.pruning.selective_weight_decay.SelectiveWeightDecay` after every optimizer step,
``gmp_wd`` the same decay strength on every weight (``quantile`` 1: plain decoupled weight decay).
"""

from __future__ import annotations

from torch import nn

from zoo.experiments._compress_baselines import GMP
from zoo.experiments._compressbench import METHODS, compressbench, register
from zoo.pruning.selective_weight_decay import SelectiveWeightDecay

__all__ = ["SWDMethod", "EXPERIMENT"]


class SWDMethod(GMP):
    """GMP's schedule plus selective weight decay (``lmbda``, ``quantile``, ``relevance``)."""

    defaults = {**GMP.defaults, "lmbda": 1e-3, "quantile": 0.5, "relevance": "taylor"}

    def attach(self, model: nn.Module) -> nn.Module:
        model = super().attach(model)
        self.reg = SelectiveWeightDecay(model, float(self.opt["lmbda"]), float(self.opt["quantile"]), str(self.opt["relevance"]))
        return model

    def after_step(self, model: nn.Module) -> None:
        self.reg.step()


if "swd" not in METHODS:
    register("swd")(SWDMethod)

EXPERIMENT = compressbench("selective_weight_decay_pruning")
