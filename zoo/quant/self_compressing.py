r"""Self-Compressing Neural Networks (Cséfalvay & Imber, 2023, arXiv:2301.13142).

Every output channel :math:`i` of every ``nn.Linear``/``nn.Conv2d`` layer :math:`l` gets a
trainable bit depth :math:`b^l_i` and exponent :math:`e^l_i`, and its weights are used through the
differentiable quantiser (:class:`zoo.quant.LearnableBitDepth`, straight-through rounding)

.. math:: q(x; b, e) = 2^{e}\,\big\lfloor \min\big(\max(2^{-e}x,\ -2^{b-1}),\ 2^{b-1}-1\big)\big\rceil .

Training minimises the task loss plus the network's size (paper Eq. 3-4)

.. math:: \Lambda(x) = \Lambda_0(x) + \gamma\, Q, \qquad
          Q = \frac{1}{N}\sum_l I_l H_l W_l \sum_{i=1}^{O_l} b^l_i ,

the mean number of weight bits per weight (:math:`N` weights in all; :math:`I_l, H_l, W_l` the
input channels and kernel size of layer :math:`l`, :math:`O_l` its output channels). A channel
whose bit depth reaches 0 quantises to zeros: it is **removed**, together with the input columns
of the next layer that read it (:func:`remove_zero_bit_channels`, then
:func:`zoo.compress.export`'s shrink), so :math:`I_{l+1}` counts only the live channels of layer
:math:`l` (the paper's point that pruning a channel also shrinks the next layer; here
:math:`I_{l}` is the detached count of live channels of the previous quantised layer, so the size
gradient of :math:`b^{l+1}` sees the shrunk width).

Departures from the paper: the quantiser's exponent starts at the max-abs rule of the initial
weight at ``init_bits`` bits (the paper does not fix an initialisation beyond "the bit depth
starts at a few bits"); bit depths and exponents are trained by the shared optimizer (Adam) with
the model's learning rate; biases stay ``float32`` and are not counted in :math:`Q` (they are
counted in every stored-size metric); the live input count :math:`I_l` is taken along the
module order of the quantised layers (a plain chain: MLP or the family's small CNN).

Use :class:`SelfCompression` on a model, add :meth:`SelfCompression.size` (times ``gamma``) to
the loss, and call :func:`remove_zero_bit_channels` before export.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.quant.uniform import LearnableBitDepth, attach, quantizers

__all__ = ["SelfCompression", "scn_size", "live_channels", "remove_zero_bit_channels"]


def live_channels(q: LearnableBitDepth) -> torch.Tensor:
    """Boolean per output channel: bit depth above 0 (the channel survives)."""
    return q.depth() > 0


def scn_size(model: nn.Module, live_inputs: bool = True) -> tuple[torch.Tensor, int]:
    r"""``(sum_l I_l H_l W_l sum_i b^l_i, N)``: differentiable weight bits and the weight count.

    With ``live_inputs`` the input channels :math:`I_l` of a layer are scaled by the fraction of
    live channels of the previous quantised layer (detached); without, the full layer width.
    """
    total: torch.Tensor | None = None
    n = 0
    prev_live: float = 1.0
    for m, q in quantizers(model):
        if not isinstance(q, LearnableBitDepth):
            raise TypeError(f"{type(m).__name__}: self-compression needs LearnableBitDepth quantisers, got {type(q).__name__}")
        w = m.parametrizations.weight.original
        per = math.prod(w.shape[1:])  # I_l H_l W_l at full width
        n += w.numel()
        frac = prev_live if live_inputs else 1.0
        t = q.depth().sum() * (per * frac)
        total = t if total is None else total + t
        prev_live = float(live_channels(q).double().mean())
    if total is None:
        raise ValueError("scn_size: the model has no quantised layers; attach SelfCompression first")
    return total, n


class SelfCompression:
    """Attach per-channel learnable bit depths to every Linear/Conv2d weight of ``model``.

    Args:
        model: the network (changed in place: each weight gets a parametrization).
        init_bits: starting bit depth of every channel.
        max_bits: bit depths are clipped to ``[0, max_bits]``.
        live_inputs: count only live input channels in the size term (see :func:`scn_size`).
    """

    def __init__(self, model: nn.Module, init_bits: float = 8.0, max_bits: int = 16, live_inputs: bool = True) -> None:
        self.model = model
        self.live_inputs = live_inputs
        self.quantizers = attach(model, lambda m: LearnableBitDepth(m.weight, bits=init_bits, max_bits=max_bits))

    def size(self) -> torch.Tensor:
        """:math:`Q`, the mean weight bits per weight (differentiable in the bit depths)."""
        bits, n = scn_size(self.model, self.live_inputs)
        return bits / n

    def loss(self, task_loss: torch.Tensor, gamma: float) -> torch.Tensor:
        r""":math:`\Lambda_0 + \gamma Q`."""
        return task_loss + gamma * self.size()

    @torch.no_grad()
    def bits_per_weight(self) -> float:
        """:math:`Q` at the current bit depths (float)."""
        return float(self.size())


@torch.no_grad()
def remove_zero_bit_channels(model: nn.Module) -> int:
    """Harden the removal of every channel whose bit depth is 0; returns how many channels that is.

    Such a channel's weights already quantise to exact zeros; its bit depth is set to exactly 0
    (so its stored codes need no bits), and :func:`zoo.compress.export` then removes the row and
    the next layer's columns that read it, folding the channel's constant output (its bias after
    the activation) into the next layer's bias, so the exported function is unchanged.
    """
    removed = 0
    for _, q in quantizers(model):
        if not isinstance(q, LearnableBitDepth):
            continue
        dead = ~live_channels(q)
        q.bits[dead] = 0.0
        removed += int(dead.sum())
    return removed
