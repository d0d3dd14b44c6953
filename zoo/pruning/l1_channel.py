r"""L1-norm channel (filter) pruning, the family's structured baseline.

Hao Li, Asim Kadav, Igor Durdanovic, Hanan Samet, Hans Peter Graf. "Pruning Filters for Efficient
ConvNets", ICLR 2017. https://arxiv.org/abs/1608.08710

Each layer's output channels (filters of a ``Conv2d``, rows of a ``Linear``) are ranked by the
L1 norm of their weights,

.. math:: s_c = \sum_{i} |W_{c, i}|,

and the ``round(ratio * C)`` lowest are removed, the same ratio in every pruned layer (the
paper's one-shot, layer-wise scheme); the network is then fine-tuned with the channels held at
zero. The last layer (the classifier) is never pruned, since its outputs are the classes. The
masks are :class:`zoo.pruning.magnitude.MagnitudeMask` parametrizations over whole rows, also
zeroing the channel's bias, so :func:`harden_l1_channel` leaves dead rows that
:func:`zoo.compress.export` removes from the layer and its successor.

Departure: Li et al. also prune the next layer's kernels reading a removed channel and retrain;
here that removal is done by the exporter (exactly, since the channel's output is zero).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from zoo.pruning.magnitude import MagnitudeMask
from zoo.pruning.structure import fold_parametrization, parametrization_input, prunable

__all__ = ["l1_channel_scores", "l1_channel_mask", "L1ChannelPruning", "harden_l1_channel"]


def l1_channel_scores(weight: torch.Tensor) -> torch.Tensor:
    """:math:`s_c = \\sum_i |W_{c,i}|` per output channel."""
    return weight.detach().reshape(weight.shape[0], -1).abs().sum(1)


def l1_channel_mask(weight: torch.Tensor, ratio: float) -> torch.Tensor:
    """{0, 1} per output channel (shape ``[C]``) removing the ``round(ratio * C)`` lowest L1 norms."""
    s = l1_channel_scores(weight)
    n_prune = round(ratio * s.numel())
    keep = torch.ones_like(s)
    if n_prune > 0:
        keep[s.topk(n_prune, largest=False).indices] = 0.0
    return keep


class _BiasMask(nn.Module):
    def __init__(self, keep: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", keep.clone())

    def forward(self, b: torch.Tensor) -> torch.Tensor:
        return b * self.mask


class L1ChannelPruning:
    """Remove ``ratio`` of the output channels of every Linear/Conv2d but the last, by L1 norm, once."""

    def __init__(self, model: nn.Module, ratio: float, skip: Iterable[str] = ()) -> None:
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"ratio must be in [0, 1), got {ratio}")
        layers = [(n, m) for n, m in prunable(model) if n not in set(skip)]
        self.layers = [m for _, m in layers[:-1]]  # never the classifier
        self.keep: list[torch.Tensor] = []
        for layer in self.layers:
            keep = l1_channel_mask(layer.weight, ratio)
            mask = MagnitudeMask(layer.weight.shape, layer.weight.device)
            mask.mask.copy_(keep.reshape(-1, *([1] * (layer.weight.dim() - 1))).expand_as(layer.weight))
            parametrize.register_parametrization(layer, "weight", mask)
            if layer.bias is not None:
                parametrize.register_parametrization(layer, "bias", _BiasMask(keep))
            self.keep.append(keep)


@torch.no_grad()
def harden_l1_channel(model: nn.Module) -> nn.Module:
    """Fold the channel masks into real zeros (weights and biases); other parametrizations stay."""
    for _, layer in prunable(model):
        for name, cls in (("weight", MagnitudeMask), ("bias", _BiasMask)):
            if parametrize.is_parametrized(layer, name):
                for mask in [p for p in layer.parametrizations[name] if isinstance(p, cls)]:
                    fold_parametrization(layer, name, mask, mask(parametrization_input(layer, name, mask)))
    return model
