r"""Uniform symmetric quantisers of a weight, per output channel, as parametrizations.

A weight row :math:`w_c` (output channel :math:`c`) with bit depth :math:`b_c` and scale
:math:`s_c` is stored as integers :math:`q_c \in [-2^{b_c-1}, 2^{b_c-1}-1]` and used as

.. math:: \hat w_c = s_c \cdot \operatorname{clamp}\big(\operatorname{round}_{\text{STE}}(w_c / s_c),
          -2^{b_c-1},\ 2^{b_c-1}-1\big).

* :class:`FakeQuant` - fixed ``bits``; the scale is the max-abs rule
  :math:`s_c = \max|w_c| / (2^{b-1}-1)` recomputed from the current weights (detached), or a
  learnable per-channel scale (``learn_scale=True``, initialised by that rule; LSQ-style, the
  gradient reaches the scale through :math:`s_c` in front and inside the rounding).
* :class:`LearnableBitDepth` - the bit depth is a trainable float per channel (the
  self-compressing networks parametrisation, Cséfalvay & Imber 2023):

  .. math:: q(x; b, e) = 2^{e}\, \operatorname{round}_{\text{STE}}\big(\operatorname{clamp}(2^{-e}x,\
            -2^{b-1},\ 2^{b-1}-1)\big),

  with :math:`b \ge 0` (clipped) and exponent :math:`e` both trainable; the gradient reaches
  :math:`b` through the clamp bounds and :math:`e` through the scale. A channel whose bit depth
  reaches 0 is all zeros and is removed by :func:`zoo.compress.export`.

:func:`size_bits` is the differentiable number of weight bits :math:`\sum_c b_c \cdot |w_c|`
(the bit depth times the number of weights it applies to) and :func:`size_loss` its mean per
weight, the size term of a compression objective. Every quantiser implements
:meth:`Quantizer.export_codes`, the integer codes, scales and bit depths of the current weight,
which :func:`zoo.compress.export` stores.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from zoo.quant.ste import round_ste

__all__ = ["Quantizer", "FakeQuant", "LearnableBitDepth", "symmetric_scale", "fake_quantize", "dequantize",
           "attach", "quantizers", "size_bits", "size_loss"]


def _rows(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0], -1)


def _per_row(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """A per-output-channel vector shaped to broadcast against ``w``."""
    return v.reshape(-1, *([1] * (w.dim() - 1)))


def symmetric_scale(w: torch.Tensor, bits: int | torch.Tensor) -> torch.Tensor:
    """Per-output-channel max-abs scale :math:`\\max|w_c| / (2^{b-1}-1)` (1 for an all-zero row)."""
    qmax = (2.0 ** (torch.as_tensor(bits, dtype=w.dtype, device=w.device) - 1) - 1).clamp_min(1.0)
    amax = _rows(w.detach()).abs().amax(1)
    s = amax / qmax
    return torch.where(amax > 0, s, torch.ones_like(s))


def fake_quantize(w: torch.Tensor, bits: int, scale: torch.Tensor) -> torch.Tensor:
    """:math:`s \\cdot \\operatorname{clamp}(\\operatorname{round_{STE}}(w/s), -2^{b-1}, 2^{b-1}-1)`, per row."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    s = _per_row(scale, w)
    return s * torch.clamp(round_ste(w / s), lo, hi)


def dequantize(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return codes.to(scale.dtype) * _per_row(scale, codes)


class Quantizer(nn.Module):
    """A weight parametrization that :func:`zoo.compress.export` stores as integers."""

    def export_codes(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(codes int64 of w's shape, scale per row, bits per row int64)`` with ``forward(w) == codes * scale``."""
        raise NotImplementedError


class FakeQuant(Quantizer):
    """``bits``-bit symmetric per-channel fake quantisation with a straight-through gradient."""

    def __init__(self, bits: int, *, out_channels: int | None = None, learn_scale: bool = False,
                 init: torch.Tensor | None = None) -> None:
        super().__init__()
        if not 2 <= int(bits) <= 16:
            raise ValueError(f"bits must be in 2..16, got {bits}")
        self.bits = int(bits)
        self.learn_scale = learn_scale
        if learn_scale:
            if init is None:
                raise ValueError("learn_scale=True needs init= (the weight the scale starts from)")
            self.log_scale = nn.Parameter(symmetric_scale(init, self.bits).log())

    def scale(self, w: torch.Tensor) -> torch.Tensor:
        return self.log_scale.exp() if self.learn_scale else symmetric_scale(w, self.bits)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return fake_quantize(w, self.bits, self.scale(w))

    @torch.no_grad()
    def export_codes(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.scale(w).detach()
        lo, hi = -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
        codes = torch.clamp(torch.round(w / _per_row(s, w)), lo, hi).long()
        return codes, s, torch.full((w.shape[0],), self.bits, dtype=torch.long, device=w.device)


class LearnableBitDepth(Quantizer):
    """Per-channel trainable bit depth ``b`` and exponent ``e`` (see the module docstring)."""

    def __init__(self, init: torch.Tensor, bits: float = 8.0, max_bits: int = 16) -> None:
        super().__init__()
        out = init.shape[0]
        self.max_bits = max_bits
        self.bits = nn.Parameter(torch.full((out,), float(bits), dtype=init.dtype, device=init.device))
        amax = _rows(init.detach()).abs().amax(1).clamp_min(1e-8)
        # e such that max|w| sits at the top of the b-bit range: 2^e (2^(b-1) - 1) = max|w|.
        self.exponent = nn.Parameter(torch.log2(amax / max(2.0 ** (bits - 1) - 1, 1.0)))

    def depth(self) -> torch.Tensor:
        """The bit depth in use, per channel: ``b`` clipped to ``[0, max_bits]``."""
        return self.bits.clamp(0.0, float(self.max_bits))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        b = _per_row(self.depth(), w)
        scale = _per_row(torch.pow(2.0, self.exponent), w)
        x = w / scale
        lo, hi = -torch.pow(2.0, b - 1), torch.pow(2.0, b - 1) - 1
        # clamp with tensor bounds: the gradient reaches b where x sits outside [lo, hi]
        clamped = torch.minimum(torch.maximum(x, lo), hi)
        return scale * round_ste(clamped)

    @torch.no_grad()
    def export_codes(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # The forward pass uses the continuous b in the bounds: the integer range the codes need is
        # the smallest b' with -2^(b'-1) <= q <= 2^(b'-1) - 1 for every code q of the row.
        q = torch.round(self.forward(w) / _per_row(torch.pow(2.0, self.exponent), w)).long()
        bits = _bits_needed(q)
        return q, torch.pow(2.0, self.exponent).detach(), bits

    def weights_per_channel(self, w: torch.Tensor) -> int:
        return _rows(w).shape[1]


def _bits_needed(q: torch.Tensor) -> torch.Tensor:
    """Per row, the fewest bits of a two's-complement range holding every code (0 for an all-zero row)."""
    r = _rows(q)
    hi = r.clamp_min(0).amax(1).double()
    lo = (-r).clamp_min(0).amax(1).double()
    need = torch.maximum(torch.ceil(torch.log2(hi + 1)) + 1, torch.ceil(torch.log2(lo.clamp_min(1))) + 1)
    return torch.where((hi == 0) & (lo == 0), torch.zeros_like(need), need).long()


def attach(model: nn.Module, make: Callable[[nn.Module], Quantizer],
           layers: Callable[[str, nn.Module], bool] | None = None) -> list[Quantizer]:
    """Register ``make(layer)`` on the weight of every ``nn.Linear``/``nn.Conv2d`` (``layers`` filters)."""
    out = []
    for name, m in list(model.named_modules()):
        if isinstance(m, (nn.Linear, nn.Conv2d)) and (layers is None or layers(name, m)):
            q = make(m)
            parametrize.register_parametrization(m, "weight", q)
            out.append(q)
    return out


def quantizers(model: nn.Module) -> list[tuple[nn.Module, Quantizer]]:
    """``(layer, quantizer)`` for every quantised weight of ``model``."""
    out = []
    for m in model.modules():
        if parametrize.is_parametrized(m, "weight"):
            out += [(m, p) for p in m.parametrizations.weight if isinstance(p, Quantizer)]
    return out


def size_bits(model: nn.Module) -> torch.Tensor:
    """Differentiable weight bits :math:`\\sum_c b_c |w_c|` over every quantised layer (fixed-bit ones count too)."""
    total = None
    for m, q in quantizers(model):
        per = math.prod(m.parametrizations.weight.original.shape[1:])
        if isinstance(q, LearnableBitDepth):
            t = q.depth().sum() * per
        else:
            t = torch.tensor(float(q.bits * m.parametrizations.weight.original.numel()))
        total = t if total is None else total + t
    if total is None:
        raise ValueError("size_bits: the model has no quantised layers; attach() quantizers first")
    return total


def size_loss(model: nn.Module) -> torch.Tensor:
    """Mean bits per quantised weight, :func:`size_bits` over their count (the SCN size term Q)."""
    n = sum(m.parametrizations.weight.original.numel() for m, _ in quantizers(model))
    return size_bits(model) / n
