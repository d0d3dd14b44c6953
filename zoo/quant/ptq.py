"""Post-training quantisation (the family's PTQ baseline): fixed ``bits``, per-channel max-abs scales.

No data and no training: every ``nn.Linear``/``nn.Conv2d`` weight gets a :class:`FakeQuant`
parametrization whose scale is computed from the trained weight; :func:`zoo.compress.export` then
stores its integer codes. Biases stay float (32 bits), as in most integer deployments.
"""

from __future__ import annotations

from torch import nn

from zoo.quant.uniform import FakeQuant, attach

__all__ = ["post_training_quantize"]


def post_training_quantize(model: nn.Module, bits: int) -> nn.Module:
    """Quantise every weight of ``model`` in place to ``bits`` bits (symmetric, per output channel)."""
    attach(model, lambda m: FakeQuant(bits))
    return model
