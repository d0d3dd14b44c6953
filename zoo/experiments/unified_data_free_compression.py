"""UDFC (data-free channel pruning + quantisation with closed-form next-layer compensation) vs the
same compression without compensation, on LeNet-300-100 / MNIST-5k, zero fine-tuning.

Both arms are the registered method ``udfc`` (:mod:`zoo.pruning.data_free_compensation`) on the
seed's shared dense pretrained model (``pretrain_epochs``, ``epochs: 0``): the same L1 channel
selection and the same per-row quantiser; the ``compensate: false`` arm only skips the closed-form
rewrite of the next layer. ``compress`` leaves zero rows (removed by the exporter's shrink) and
attaches :func:`zoo.quant.post_training_quantize` at the same bit width (idempotent on the already
quantised rows), so the exported model is smaller in both rows and bits.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from zoo.experiments._compressbench import Method, compressbench, register
from zoo.pruning.data_free_compensation import compress_mlp
from zoo.quant import post_training_quantize

__all__ = ["UDFC", "EXPERIMENT"]


@register("udfc")
class UDFC(Method):
    defaults: dict[str, Any] = {"ratio": 0.5, "bits": None, "compensate": True, "input_var": 1.0, "ridge": 1e-6,
                                "quant_mode": "scale"}

    def compress(self, model: nn.Module) -> nn.Module:
        layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
        bits = None if self.opt["bits"] is None else int(self.opt["bits"])
        compress_mlp(layers, float(self.opt["ratio"]), bits, bool(self.opt["compensate"]),
                     float(self.opt["input_var"]), float(self.opt["ridge"]), str(self.opt["quant_mode"]))
        if bits is not None:
            post_training_quantize(model, bits)
        return model


EXPERIMENT = compressbench("unified_data_free_compression")
