"""Shapeshifter-style parameter sharing under a fixed budget (Plummer et al., "Neural Parameter Allocation Search", ICLR 2022).

NPAS: train a network of fixed architecture whose layers draw their weights from a shared bank of
exactly ``budget`` trainable scalars :math:`\\theta \\in \\mathbb{R}^B`, whatever the layers' total
size :math:`N = \\sum_l n_l`. A *weight generator* maps the bank to each layer's :math:`n_l` weights:

* ``repeat`` (baseline): :math:`W_l = \\mathrm{tile}(\\theta)[o_l : o_l + n_l]`, each layer reading the
  bank cyclically from its own offset :math:`o_l` (the offsets run on, so layers overlap only when
  :math:`N > B`);
* ``hash`` (HashedNet baseline): :math:`(W_l)_i = s_l(i)\\,\\theta_{h_l(i)}` with a fixed random index
  :math:`h_l(i) \\in [B]` and sign :math:`s_l(i) \\in \\{\\pm 1\\}`;
* ``wavg`` (Shapeshifter's learned template combination): :math:`K` templates per layer, windows
  :math:`T_{l,k} = \\mathrm{tile}(\\theta)[o_{l,k} : o_{l,k} + n_l]` at evenly spread offsets, combined with
  per-layer learned coefficients, :math:`W_l = \\sum_k \\alpha_{l,k} T_{l,k}`. The coefficients
  (:math:`K` per layer) are the only extra trainable parameters; they let each layer learn its own
  mixture of the shared windows instead of a fixed slice.

Departures (a minimal core): one parameter group for the whole network (the paper learns which
layers share a group by clustering layer representations in a short preliminary training), only the
WAvg generator (not the paper's Emb variant or its upsampling by learned masks for budgets > N),
and biases are kept outside the bank (as the paper does for small per-layer parameters).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MAPPINGS", "ParameterBank", "SharedLinear", "SharedMLP"]

MAPPINGS = ("repeat", "hash", "wavg")


class ParameterBank(nn.Module):
    """``budget`` shared trainable scalars and a cursor that hands out offsets to the layers it feeds."""

    def __init__(self, budget: int, std: float = 0.05) -> None:
        super().__init__()
        self.theta = nn.Parameter(std * torch.randn(int(budget)))
        self.std = float(std)  # the init scale: layer gains derive from it, not from the draw, so they need no storage
        self.cursor = 0

    def window(self, offset: int, n: int) -> torch.Tensor:
        """``tile(theta)[offset : offset + n]`` (cyclic)."""
        b = self.theta.numel()
        idx = (torch.arange(n, device=self.theta.device) + offset) % b
        return self.theta[idx]

    def take(self, n: int) -> int:
        o = self.cursor
        self.cursor = (self.cursor + n) % self.theta.numel()
        return o


class SharedLinear(nn.Module):
    """A ``Linear`` whose weight is generated from a :class:`ParameterBank` by ``mapping``; own bias."""

    def __init__(self, bank: ParameterBank, in_features: int, out_features: int, mapping: str = "wavg",
                 templates: int = 4, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if mapping not in MAPPINGS:
            raise ValueError(f"unknown mapping {mapping!r}: use one of {MAPPINGS}")
        self.bank, self.mapping = [bank], mapping  # a list: the bank is registered once, by its owner
        self.in_features, self.out_features = in_features, out_features
        n = in_features * out_features
        self.n = n
        self.bias = nn.Parameter(torch.zeros(out_features))
        scale = 1.0 / (math.sqrt(in_features) * bank.std)
        if mapping == "repeat":
            self.offset = bank.take(n)
            self.gain = scale
        elif mapping == "hash":
            g = generator or torch.Generator().manual_seed(n)
            # not stored: the index and sign are regenerated from the layer's seed (HashedNets hashes on the fly)
            self.register_buffer("index", torch.randint(0, bank.theta.numel(), (n,), generator=g), persistent=False)
            self.register_buffer("sign", torch.randint(0, 2, (n,), generator=g).float() * 2 - 1, persistent=False)
            self.gain = scale
        else:
            base = bank.take(n)
            b = bank.theta.numel()
            self.offsets = [(base + k * b // templates) % b for k in range(templates)]
            self.alpha = nn.Parameter(torch.full((templates,), scale / math.sqrt(templates)))

    def weight(self) -> torch.Tensor:
        bank = self.bank[0]
        if self.mapping == "repeat":
            w = self.gain * bank.window(self.offset, self.n)
        elif self.mapping == "hash":
            w = self.gain * self.sign * bank.theta[self.index]
        else:
            w = sum(a * bank.window(o, self.n) for a, o in zip(self.alpha, self.offsets))
        return w.view(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias)


class SharedMLP(nn.Module):
    """An MLP of the given widths whose Linear weights all come from one bank of ``budget`` scalars."""

    def __init__(self, in_features: int, hidden: list[int], num_classes: int, budget: int, mapping: str = "wavg",
                 templates: int = 4) -> None:
        super().__init__()
        self.bank = ParameterBank(budget)
        widths = [in_features, *hidden, num_classes]
        self.layers = nn.ModuleList(SharedLinear(self.bank, a, b, mapping, templates,
                                                 torch.Generator().manual_seed(1000 + i))
                                    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h

    def materialize(self) -> nn.Sequential:
        """The generated network as plain ``nn.Linear`` layers (what inference runs; same outputs)."""
        mods: list[nn.Module] = [nn.Flatten()]
        for i, layer in enumerate(self.layers):
            lin = nn.Linear(layer.in_features, layer.out_features)
            with torch.no_grad():
                lin.weight.copy_(layer.weight())
                lin.bias.copy_(layer.bias)
            mods.append(lin)
            if i < len(self.layers) - 1:
                mods.append(nn.ReLU())
        return nn.Sequential(*mods)
