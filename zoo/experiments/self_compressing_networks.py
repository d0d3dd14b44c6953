"""Self-compressing networks (learnable per-channel bit depth + size loss) vs dense and fixed-bit PTQ.

The ``scn`` arms train the family's LeNet-300-100 on MNIST-5k from the seed's initialisation with
:class:`zoo.quant.self_compressing.SelfCompression` (every channel's bit depth and exponent
trainable, loss ``CE + gamma * Q``); at the end the channels whose bit depth reached 0 are removed
(:func:`~zoo.quant.self_compressing.remove_zero_bit_channels`, then the export's shrink) and the
exported model (bit-packed integer codes at each channel's bit depth) is measured. ``dense`` and
``ptq`` (the family's post-training quantisation of the dense model) train with the same data
order, epochs, optimizer and schedule.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import nn

from zoo.experiments._compressbench import Batch, Method, compressbench, register
from zoo.quant.self_compressing import SelfCompression, live_channels, remove_zero_bit_channels

__all__ = ["EXPERIMENT", "SelfCompressingMethod"]


@register("scn")
class SelfCompressingMethod(Method):
    """``gamma`` (size-loss weight), ``init_bits``, ``max_bits``, ``live_inputs`` (see :class:`SelfCompression`)."""

    defaults: dict[str, Any] = {"gamma": 0.05, "init_bits": 8.0, "max_bits": 16, "live_inputs": True}

    def attach(self, model: nn.Module) -> nn.Module:
        self.scn = SelfCompression(model, init_bits=float(self.opt["init_bits"]), max_bits=int(self.opt["max_bits"]),
                                   live_inputs=bool(self.opt["live_inputs"]))
        return model

    def loss(self, model: nn.Module, batch: Batch) -> Any:
        return self.scn.loss(F.cross_entropy(model(batch.x), batch.y), float(self.opt["gamma"]))

    def compress(self, model: nn.Module) -> nn.Module:
        self.removed = remove_zero_bit_channels(model)
        return model

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        qs = self.scn.quantizers
        live = sum(int(live_channels(q).sum()) for q in qs)
        total = sum(q.bits.numel() for q in qs)
        return {"size_q": self.scn.bits_per_weight(), "live_channels": live / total,
                "removed_channels": float(self.removed)}


EXPERIMENT = compressbench("self_compressing_networks")
