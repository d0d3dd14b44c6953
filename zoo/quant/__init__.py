"""Quantisation: straight-through fake-quantisers, learnable bit depths, a size loss, post-training quantisation.

Every quantiser is a ``torch.nn.utils.parametrize`` parametrization of a weight, so a quantised
model is the same ``nn.Module`` with the same parameters, and :func:`zoo.compress.export` turns it
into integer codes and scales (:meth:`Quantizer.export_codes`): the exported model stores the
integers, not the floats.
"""

from zoo.quant.ste import round_ste
from zoo.quant.uniform import (
    FakeQuant,
    LearnableBitDepth,
    Quantizer,
    attach,
    dequantize,
    fake_quantize,
    quantizers,
    size_bits,
    size_loss,
    symmetric_scale,
)
from zoo.quant.ptq import post_training_quantize

__all__ = [
    "round_ste", "FakeQuant", "LearnableBitDepth", "Quantizer", "attach", "dequantize", "fake_quantize",
    "quantizers", "size_bits", "size_loss", "symmetric_scale", "post_training_quantize",
]
