"""Parameter-free spatial operators in place of depthwise convolutions (Han et al., ICLR 2022).

"Learning Features with Parameter-Free Layers" (arXiv:2202.02777, code naver-ai/PfLayer) asks
whether the trainable *spatial* operator of an efficient block can be a fixed one. In a
MobileNetV2-style inverted bottleneck

.. math::  y = x + W_p\\,\\sigma\\big(S(\\sigma(W_e x))\\big)

(:math:`W_e` a 1x1 expansion to :math:`t\\cdot C` channels, :math:`W_p` a 1x1 projection back,
:math:`\\sigma` ReLU) the spatial operator :math:`S` is a 3x3 depthwise convolution
:math:`S(h)_c = k_c * h_c` (:math:`9tC` weights, :math:`9tC\\,HW` MACs). The paper replaces it by
the parameter-free 3x3 max-pool :math:`S(h)_c(p) = \\max_{q \\in N_3(p)} h_c(q)` (stride 1, padding 1:
the same output shape, no weights, no multiply-adds) and finds it the best of the fixed operators,
ahead of average pooling :math:`S(h)_c(p) = \\tfrac{1}{|N_3(p)|}\\sum_{q} h_c(q)`.

Here: :class:`InvertedResidual` (``spatial`` = ``dwconv`` | ``maxpool`` | ``avgpool``),
:class:`PfNet` (stem, two stages of such blocks, global average pool, linear classifier),
:func:`replace_depthwise` (the paper's layer-wise replacement: every depthwise ``Conv2d`` of a
model becomes a pool of the same kernel, stride and padding) and :func:`spatial_ops`.

Departures: no batch normalisation (the paper's blocks have BN after every conv; our nets are two
stages deep and train without it), ReLU instead of ReLU6, and a small 8x8/28x28 CNN instead of
ImageNet ResNets/MobileNets. The non-linearity after :math:`S` is kept for the pool too
(a no-op after a max-pool of ReLU outputs, as in the paper's block where the pool follows BN-ReLU).
"""

from __future__ import annotations

from torch import nn
import torch

__all__ = ["SPATIAL", "spatial_op", "InvertedResidual", "PfNet", "replace_depthwise", "spatial_ops"]

SPATIAL = ("dwconv", "maxpool", "avgpool")


def spatial_op(kind: str, channels: int, kernel: int = 3, stride: int = 1) -> nn.Module:
    """The block's spatial operator: a depthwise conv or a parameter-free pool with the same output shape."""
    pad = kernel // 2
    if kind == "dwconv":
        return nn.Conv2d(channels, channels, kernel, stride, pad, groups=channels)
    if kind == "maxpool":
        return nn.MaxPool2d(kernel, stride, pad)
    if kind == "avgpool":
        return nn.AvgPool2d(kernel, stride, pad, count_include_pad=False)
    raise ValueError(f"unknown spatial operator {kind!r}: use one of {SPATIAL}")


class InvertedResidual(nn.Module):
    """``x + W_p relu(S(relu(W_e x)))`` with 1x1 ``W_e`` (C -> t*C), ``W_p`` (t*C -> C) and spatial ``S``."""

    def __init__(self, channels: int, expansion: int = 4, spatial: str = "dwconv", kernel: int = 3) -> None:
        super().__init__()
        hidden = channels * expansion
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.spatial = spatial_op(spatial, hidden, kernel)
        self.project = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.expand(x))
        h = torch.relu(self.spatial(h))
        return x + self.project(h)


class PfNet(nn.Module):
    """Stem 3x3 conv, ``blocks`` inverted residuals, 2x2 max-pool, 1x1 widen to 2w, ``blocks`` more, GAP, linear."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, blocks: int = 2,
                 expansion: int = 4, spatial: str = "dwconv") -> None:
        super().__init__()
        w = width
        layers: list[nn.Module] = [nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU()]
        layers += [InvertedResidual(w, expansion, spatial) for _ in range(blocks)]
        layers += [nn.MaxPool2d(2), nn.Conv2d(w, 2 * w, 1), nn.ReLU()]
        layers += [InvertedResidual(2 * w, expansion, spatial) for _ in range(blocks)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(2 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


def _is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels


def replace_depthwise(model: nn.Module, kind: str = "maxpool") -> int:
    """Replace every depthwise ``Conv2d`` of ``model`` in place by a ``kind`` pool of its kernel/stride; returns the count."""
    if kind not in ("maxpool", "avgpool"):
        raise ValueError(f"replace_depthwise: kind must be maxpool or avgpool, got {kind!r}")
    n = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _is_depthwise(child):
                k, s, p = child.kernel_size[0], child.stride[0], child.padding[0]
                new = nn.MaxPool2d(k, s, p) if kind == "maxpool" else nn.AvgPool2d(k, s, p, count_include_pad=False)
                setattr(parent, name, new)
                n += 1
    return n


def spatial_ops(model: nn.Module) -> dict[str, int]:
    """How many depthwise convs, max-pools and avg-pools ``model`` holds."""
    out = {"dwconv": 0, "maxpool": 0, "avgpool": 0}
    for m in model.modules():
        if _is_depthwise(m):
            out["dwconv"] += 1
        elif isinstance(m, nn.MaxPool2d):
            out["maxpool"] += 1
        elif isinstance(m, nn.AvgPool2d):
            out["avgpool"] += 1
    return out
