r"""Elastic bit-width quantisation supernet (EQ-Net, Xu et al., ICCV 2023), weights only, as a
registered compression :class:`~zoo.experiments._compressbench.Method`.

One set of float weights :math:`W` is shared by every bit width :math:`b \in \mathcal B` (the
elastic space, e.g. :math:`\{2, 3, 4, 8\}`). At width :math:`b` every ``nn.Linear``/``nn.Conv2d``
weight is used as its symmetric per-output-channel fake-quantised value
(:class:`zoo.quant.FakeQuant`, max-abs scale recomputed from the current weight, straight-through
rounding :func:`zoo.quant.round_ste`):

.. math:: s_c(b) = \frac{\max_j |W_{cj}|}{2^{b-1}-1}, \qquad
          Q_b(W)_{cj} = s_c(b)\,\operatorname{clamp}\big(\operatorname{round}_{\text{STE}}(W_{cj}/s_c(b)),
          -2^{b-1},\ 2^{b-1}-1\big).

**Training** (the sandwich rule of weight-sharing supernets, which EQ-Net follows): at every
optimizer step, with the mini-batch :math:`(x, y)`, the loss is the sum over the largest width,
the smallest width and ``samples`` widths drawn uniformly from :math:`\mathcal B` (a seeded
generator, so the supernet is the same for a seed whatever width it is later exported at):

.. math:: \mathcal L(W) = \sum_{b \in \{\max\mathcal B,\ \min\mathcal B,\ b_1, \dots, b_k\}}
          \operatorname{CE}\big(f(x; Q_b(W)), y\big), \qquad b_i \sim U(\mathcal B),

one backward pass accumulating the gradients of every sampled width into the shared :math:`W`
(one optimizer step). ``sandwich=False`` trains on the sampled widths only.

**Deployment**: the trained supernet is exported at any :math:`b \in \mathcal B` by fixing every
quantiser to :math:`b` (:func:`set_bits`); :func:`zoo.compress.export` stores the :math:`b`-bit
integer codes and scales, so the exported model is exactly :math:`f(\cdot; Q_b(W))`.

Departures from the paper: only elastic *bit width* of the weights (EQ-Net's space also has
elastic granularity (per-tensor / per-channel) and symmetry, and quantises activations, which the
family's export does not store); no WDR-Loss (weight distribution regularisation) and no GPG-Loss
(group-progressive logit guidance): the supernet is trained by the plain sandwich-rule
cross-entropy; max-abs scales instead of the paper's learned (LSQ-style) step sizes; no
mixed-precision search (CQAP predictor + genetic algorithm): every layer takes the same width.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo.experiments._compressbench import Batch, Method, register
from zoo.quant.uniform import FakeQuant, attach

__all__ = ["ElasticQuant", "attach_elastic", "set_bits", "sample_widths", "supernet_loss"]


def attach_elastic(model: nn.Module, bits: int) -> list[FakeQuant]:
    """A :class:`FakeQuant` (initially ``bits`` bits) on every Linear/Conv2d weight; returns them in layer order."""
    return attach(model, lambda m: FakeQuant(int(bits)))  # type: ignore[return-value]


def set_bits(quantizers: Sequence[FakeQuant], bits: int) -> None:
    """Put every quantiser of the supernet at width ``bits`` (the forward pass and the export use it)."""
    if not 2 <= int(bits) <= 16:
        raise ValueError(f"bits must be in 2..16, got {bits}")
    for q in quantizers:
        q.bits = int(bits)


def sample_widths(space: Sequence[int], samples: int, sandwich: bool, gen: torch.Generator) -> list[int]:
    """The widths one step trains: ``max`` and ``min`` of ``space`` (``sandwich``), then ``samples`` uniform draws."""
    space = sorted(int(b) for b in space)
    out = [space[-1], space[0]] if sandwich else []
    for i in torch.randint(len(space), (int(samples),), generator=gen).tolist():
        out.append(space[i])
    return out


def supernet_loss(model: nn.Module, quantizers: Sequence[FakeQuant], widths: Sequence[int],
                  x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """:math:`\\sum_b \\operatorname{CE}(f(x; Q_b(W)), y)` over ``widths`` (the quantisers are left at the last width)."""
    total = None
    for b in widths:
        set_bits(quantizers, b)
        loss = F.cross_entropy(model(x), y)
        total = loss if total is None else total + loss
    assert total is not None, "supernet_loss: no widths"
    return total


@register("eqnet")
class ElasticQuant(Method):
    """Trains the elastic bit-width supernet and exports it at ``export_bits`` (see the module docstring).

    The width sampler is a generator seeded by one draw of the (harness-seeded) global generator
    at ``attach``, so every arm of a seed trains the identical supernet whatever ``export_bits`` is.
    """

    defaults: dict[str, Any] = {"space": [2, 3, 4, 8], "samples": 1, "sandwich": True, "export_bits": 4}

    def attach(self, model: nn.Module) -> nn.Module:
        space = [int(b) for b in self.opt["space"]]
        if int(self.opt["export_bits"]) not in space:
            raise ValueError(f"export_bits {self.opt['export_bits']} is not in the elastic space {space}")
        self.space = space
        self.gen = torch.Generator().manual_seed(int(torch.randint(2**62, (1,)).item()))
        self.quantizers = attach_elastic(model, max(space))
        return model

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        widths = sample_widths(self.space, int(self.opt["samples"]), bool(self.opt["sandwich"]), self.gen)
        return supernet_loss(model, self.quantizers, widths, batch.x, batch.y)

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        set_bits(self.quantizers, int(self.opt["export_bits"]))  # the per-epoch test curve is at the export width

    def compress(self, model: nn.Module) -> nn.Module:
        set_bits(self.quantizers, int(self.opt["export_bits"]))
        return model

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        return {"weight_bits": float(self.quantizers[0].bits)}
