"""Trainable-gate channel pruning vs L1-norm channel pruning + fine-tuning, at equal epochs and widths.

Every arm of a seed starts from the same pretrained dense model and fine-tunes for the same
epochs with the same optimizer and batch order; the gated arm learns which channels to keep
(:mod:`zoo.pruning.trainable_gate`), the baseline fixes them by L1 norm before fine-tuning. Both
keep the same number of channels per layer, so the exported models have the same shapes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.experiments._compressbench import Batch, Method, compressbench, register
from zoo.pruning.trainable_gate import TrainableGates, gate_agreement, harden_gates

__all__ = ["TrainableGate", "EXPERIMENT"]


@register("trainable_gate")
class TrainableGate(Method):
    """Options: ``keep`` (fraction of channels kept per layer), ``lam`` (sparsity-loss weight),
    ``init`` (initial gate weight), ``m`` (sawtooth resolution), ``shape`` (gradient shape)."""

    defaults = {"keep": 0.5, "lam": 10.0, "init": 0.1, "m": 1e4, "shape": "constant"}

    def attach(self, model: nn.Module) -> nn.Module:
        self.gates = TrainableGates(model, float(self.opt["keep"]), init=float(self.opt["init"]),
                                    m=float(self.opt["m"]), shape=str(self.opt["shape"]))
        return model

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        task = F.cross_entropy(model(batch.x), batch.y)
        return task + float(self.opt["lam"]) * self.gates.sparsity_loss()

    def compress(self, model: nn.Module) -> nn.Module:
        self.agreement = gate_agreement(model, float(self.opt["keep"]))
        self.kept = harden_gates(model, float(self.opt["keep"]))
        return model

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        return {"gate_agreement": self.agreement, "kept_channels": sum(self.kept) / max(len(self.kept), 1)}


EXPERIMENT = compressbench("trainable_gate_pruning")
