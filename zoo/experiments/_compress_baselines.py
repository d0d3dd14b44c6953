"""The compression family's shared baselines, as registered :class:`~zoo.experiments._compressbench.Method` s.

===============  ============================================================================
``dense``        no compression: the model as trained (registered by the harness)
``gmp``          gradual magnitude pruning (Zhu & Gupta 2017, :mod:`zoo.pruning.magnitude`):
                 ``target`` sparsity, ``structure`` (unstructured, N:M, channel), global
                 allocation; sparsity raised on the cubic schedule from ``begin`` to ``end``
                 (fractions of the training phase), ``updates`` pruning steps in between
``l1_channel``   L1-norm channel pruning (Li et al. 2017, :mod:`zoo.pruning.l1_channel`): ``ratio``
                 of the channels of every layer but the classifier removed at the start of the
                 training phase (after pretraining), then fine-tuned
``ptq``          post-training quantisation (:func:`zoo.quant.post_training_quantize`): ``bits``
                 per weight, symmetric, per output channel, after training
===============  ============================================================================

Combine ``ptq`` with a pruner through ``gmp``'s ``bits`` option (prune, then quantise the kept weights).
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from zoo.experiments._compressbench import Method, register
from zoo.pruning import GradualMagnitudePruning, harden_magnitude
from zoo.pruning.l1_channel import L1ChannelPruning, harden_l1_channel
from zoo.quant import post_training_quantize

__all__ = ["GMP", "L1Channel", "PTQ"]


@register("gmp")
class GMP(Method):
    defaults = {"target": 0.9, "structure": "unstructured", "begin": 0.1, "end": 0.6, "updates": 10, "bits": None,
                "allocation": "global"}

    def attach(self, model: nn.Module) -> nn.Module:
        steps = int(self.cfg["epochs"]) * math.ceil(self.task.n_train / int(self.cfg["batch_size"]))
        begin, end = int(self.opt["begin"] * steps), int(self.opt["end"] * steps)
        self.pruner = GradualMagnitudePruning(model, float(self.opt["target"]), begin_step=begin, end_step=end,
                                              frequency=max(1, (end - begin) // max(1, int(self.opt["updates"]))),
                                              structure=str(self.opt["structure"]), allocation=str(self.opt["allocation"]))
        if steps == 0:  # no training phase: one-shot pruning of the (pretrained) model
            self.pruner.prune_to(self.pruner.target)
        return model

    def before_step(self, model: nn.Module, step: int, total: int) -> None:
        self.pruner.step(step, total)

    def compress(self, model: nn.Module) -> nn.Module:
        harden_magnitude(model)
        if self.opt["bits"] is not None:
            post_training_quantize(model, int(self.opt["bits"]))
        return model


@register("l1_channel")
class L1Channel(Method):
    defaults = {"ratio": 0.5, "bits": None}

    def attach(self, model: nn.Module) -> nn.Module:
        L1ChannelPruning(model, float(self.opt["ratio"]))
        return model

    def compress(self, model: nn.Module) -> nn.Module:
        harden_l1_channel(model)
        if self.opt["bits"] is not None:
            post_training_quantize(model, int(self.opt["bits"]))
        return model


@register("ptq")
class PTQ(Method):
    defaults: dict[str, Any] = {"bits": 8}

    def compress(self, model: nn.Module) -> nn.Module:
        return post_training_quantize(model, int(self.opt["bits"]))
