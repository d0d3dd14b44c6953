r"""Trainable gates on output channels: 0/1 in the forward pass, a shaped gradient in the backward pass.

Jaedeok Kim, Chiyoun Park, Hyun-Joo Jung, Yoonsuck Choe. "Plug-in, Trainable Gate for
Streamlining Arbitrary Neural Networks", AAAI 2020. https://arxiv.org/abs/1904.10921

**Trainable gate function.** With the step function :math:`b(w) = \mathbb 1[w > 0]`, a desired
gradient shape :math:`g(w)` and the sawtooth

.. math:: s^{(M)}(w) = \frac{M w - \lfloor M w \rfloor}{M} \in [0, 1/M), \qquad \frac{d s^{(M)}}{dw} = 1,

the gate is

.. math:: \mathrm{TG}^{(M)}(w) = b(w) + s^{(M)}(w)\, g(w),

whose value is within :math:`\max|g| / M` of the 0/1 step and whose derivative is
:math:`g(w) + s^{(M)}(w) g'(w) \to g(w)` as :math:`M \to \infty`. One gate weight :math:`w_c` per
output channel :math:`c` of every ``Linear``/``Conv2d`` but the classifier multiplies the
channel's weight row and bias, :math:`W'_{c} = \mathrm{TG}(w_c)\,W_c`, so the gate decides
whether the channel exists (ReLU(0) = 0, and a zero row is removed by the exporter).

**Loss.** The gates are trained with the weights (one optimizer) on

.. math:: \mathcal L = \mathcal L_{\text{task}} + \lambda \sum_{l} \Big(\tfrac{1}{C_l}\sum_c \mathrm{TG}(w_{lc}) - \kappa\Big)^2,

the paper's regulariser that drives the kept fraction to the target :math:`\kappa`; here it is
per layer (the paper counts parameters or FLOPs over the whole network) so that a gated model
has exactly the layer widths of the family's L1 channel baseline at the same ratio.

**Hardening.** :func:`harden_gates` keeps in every layer the ``round(kappa * C)`` channels with
the largest gate weights (the paper keeps :math:`w_c > 0`; once the regulariser has converged the
two differ by at most a channel or two, and :func:`gate_agreement` reports the fraction on which
they agree) and bakes the 0/1 gates into the weights as exact zeros.

Departures: per-layer instead of network-wide budget; the exact-count hardening above;
:math:`g(w) = 1` by default (a straight-through-like shape; the paper leaves ``g`` a design choice
and also uses bounded shapes, available as ``shape="sigmoid"``: :math:`g(w)=4\sigma'(w/t)`).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from zoo.pruning.structure import fold_parametrization, parametrization_input, prunable

__all__ = ["trainable_gate", "GateWeight", "TrainableGates", "harden_gates", "gate_agreement"]


def trainable_gate(w: torch.Tensor, m: float = 1e4, shape: str = "constant", temperature: float = 0.1) -> torch.Tensor:
    r""":math:`\mathrm{TG}^{(M)}(w) = b(w) + s^{(M)}(w) g(w)`: 0/1 up to ``max|g|/M``, gradient ``g(w)``."""
    b = (w > 0).to(w.dtype)
    s = (m * w - torch.floor(m * w)) / m  # sawtooth: value < 1/M, derivative 1 (floor has none)
    if shape == "constant":
        g = torch.ones_like(w)
    elif shape == "sigmoid":
        sig = torch.sigmoid(w / temperature)
        g = 4.0 * sig * (1.0 - sig)
    else:
        raise ValueError(f"unknown gradient shape {shape!r}: use 'constant' or 'sigmoid'")
    return b + s * g


class GateWeight(nn.Module):
    """Parametrization multiplying output channel ``c`` (rows of a weight, entries of a bias) by ``TG(w_c)``."""

    def __init__(self, gate: nn.Parameter, m: float, shape: str, temperature: float) -> None:
        super().__init__()
        self.gate = gate  # the same Parameter object for a layer's weight and bias
        self.m, self.shape, self.temperature = m, shape, temperature

    def value(self) -> torch.Tensor:
        return trainable_gate(self.gate, self.m, self.shape, self.temperature)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t * self.value().reshape(-1, *([1] * (t.dim() - 1)))


class TrainableGates:
    """Attach one trainable gate per output channel to every Linear/Conv2d but the last (the classifier)."""

    def __init__(self, model: nn.Module, keep: float, *, init: float = 0.1, m: float = 1e4, shape: str = "constant",
                 temperature: float = 0.1, skip: Iterable[str] = ()) -> None:
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"keep must be in (0, 1], got {keep}")
        self.keep = keep
        layers = [(n, mod) for n, mod in prunable(model) if n not in set(skip)]
        self.layers = [mod for _, mod in layers[:-1]]
        self.gates: list[nn.Parameter] = []
        for layer in self.layers:
            w = layer.weight
            gate = nn.Parameter(torch.full((w.shape[0],), float(init), device=w.device, dtype=w.dtype))
            parametrize.register_parametrization(layer, "weight", GateWeight(gate, m, shape, temperature))
            if layer.bias is not None:
                parametrize.register_parametrization(layer, "bias", GateWeight(gate, m, shape, temperature))
            self.gates.append(gate)
        self._tg = lambda g: trainable_gate(g, m, shape, temperature)  # noqa: E731

    def kept_fractions(self) -> list[torch.Tensor]:
        """Per layer, the mean gate value (differentiable): the fraction of channels kept."""
        return [self._tg(g).mean() for g in self.gates]

    def sparsity_loss(self) -> torch.Tensor:
        r""":math:`\sum_l (\bar{\mathrm{TG}}_l - \kappa)^2`."""
        return torch.stack([(k - self.keep) ** 2 for k in self.kept_fractions()]).sum()


def _gate_of(layer: nn.Module) -> GateWeight | None:
    if not parametrize.is_parametrized(layer, "weight"):
        return None
    found = [p for p in layer.parametrizations["weight"] if isinstance(p, GateWeight)]
    return found[0] if found else None


def _topk_keep(gate: torch.Tensor, keep: float) -> torch.Tensor:
    k = max(1, round(keep * gate.numel()))
    out = torch.zeros_like(gate)
    out[gate.detach().topk(k).indices] = 1.0
    return out


@torch.no_grad()
def gate_agreement(model: nn.Module, keep: float) -> float:
    """Fraction of gated channels where the paper's rule (``w_c > 0``) and the exact top-k choice agree."""
    same, total = 0, 0
    for _, layer in prunable(model):
        g = _gate_of(layer)
        if g is not None:
            same += int(((g.gate > 0).float() == _topk_keep(g.gate, keep)).sum())
            total += g.gate.numel()
    return same / max(total, 1)


@torch.no_grad()
def harden_gates(model: nn.Module, keep: float) -> list[float]:
    """Bake 0/1 gates (top ``round(keep*C)`` gate weights per layer) into exact zeros; returns kept fractions."""
    kept = []
    for _, layer in prunable(model):
        g = _gate_of(layer)
        if g is None:
            continue
        k01 = _topk_keep(g.gate, keep)
        for name in ("weight", "bias"):
            if parametrize.is_parametrized(layer, name):
                for p in [p for p in layer.parametrizations[name] if isinstance(p, GateWeight)]:
                    x = parametrization_input(layer, name, p)
                    fold_parametrization(layer, name, p, x * k01.reshape(-1, *([1] * (x.dim() - 1))))
        kept.append(float(k01.mean()))
    return kept
