r"""Quantisation-aware training (QAT) as in AQT (Abdolrashidi et al. 2021, "Pareto-optimal quantized
ResNet is mostly 4-bit"), as a registered compression :class:`~zoo.experiments._compressbench.Method`.

Every ``nn.Linear``/``nn.Conv2d`` weight :math:`W` is used in the forward pass of training as its
fake-quantised value (symmetric, per output channel :math:`c`, max-abs bound recomputed from the
current weight at every step, straight-through gradient):

.. math:: s_c = \frac{\max_j |W_{cj}|}{2^{b-1}-1}, \qquad
          \hat W_{cj} = s_c \cdot \operatorname{clamp}\big(\operatorname{round}_{\text{STE}}(W_{cj}/s_c),
          -2^{b-1},\ 2^{b-1}-1\big), \qquad
          \frac{\partial \hat W_{cj}}{\partial W_{cj}} := 1 \text{ inside the range}.

The bit depth :math:`b` is ``bits`` for every layer except the first and the last, which take
``edge_bits`` (AQT's "mostly 4-bit" ResNets keep the first convolution and the classifier at 8 bits;
``edge_bits: null`` quantises them to ``bits`` too). The float master weights are what the optimizer
updates; at the end :func:`zoo.compress.export` stores the integer codes and the scales, so the
exported model holds :math:`b`-bit integers and is exactly the network that was trained.

Departures from the paper: weights only (AQT also quantises activations, which the family's export
does not store, so the exported model is a weight-quantised model with float activations); the cost
is the exported model's stored bytes (weights, scales, float biases), not the paper's compute cost
(MACs times the operand bit widths); ``learn_scale=True`` replaces the max-abs bound by an
LSQ-style learned scale (not used by AQT, an option for comparison).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from zoo.experiments._compressbench import Method, register
from zoo.quant.uniform import FakeQuant, attach

__all__ = ["QAT", "attach_qat"]


def attach_qat(model: nn.Module, bits: int, edge_bits: int | None = None, learn_scale: bool = False) -> list[FakeQuant]:
    """Register a :class:`FakeQuant` of ``bits`` bits on every Linear/Conv2d weight of ``model``
    (``edge_bits`` on the first and the last such layer when given); returns the quantisers in layer order."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not layers:
        raise ValueError("attach_qat: the model has no Linear/Conv2d layer to quantise")
    edges = {id(layers[0]), id(layers[-1])}

    def make(m: nn.Module) -> FakeQuant:
        b = int(edge_bits) if edge_bits is not None and id(m) in edges else int(bits)
        return FakeQuant(b, learn_scale=learn_scale, init=m.weight.detach() if learn_scale else None)

    return attach(model, make)  # type: ignore[return-value]


@register("qat")
class QAT(Method):
    """``bits``-bit quantisation-aware training from the job's start (see the module docstring)."""

    defaults: dict[str, Any] = {"bits": 4, "edge_bits": None, "learn_scale": False}

    def attach(self, model: nn.Module) -> nn.Module:
        self.quantizers = attach_qat(model, int(self.opt["bits"]), self.opt["edge_bits"], bool(self.opt["learn_scale"]))
        return model

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        n = sum(m.parametrizations.weight.original.numel() for m in model.modules()
                if hasattr(m, "parametrizations") and hasattr(m.parametrizations, "weight"))
        bits = sum(q.bits * m.parametrizations.weight.original.numel()
                   for m in model.modules() if hasattr(m, "parametrizations") and hasattr(m.parametrizations, "weight")
                   for q in m.parametrizations.weight if isinstance(q, FakeQuant))
        return {"weight_bits": float(bits) / max(n, 1)}
