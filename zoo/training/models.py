"""Small reference models for the zoo's tiny datasets."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["MLP", "SmallCNN"]


class MLP(nn.Sequential):
    """Fully connected network ``in -> hidden... -> out`` with ReLU between layers.

    ``MLP(784, [300, 100], 10)`` is LeNet-300-100, the classic pruning benchmark.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, bias: bool = True) -> None:
        sizes = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b, bias=bias))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # accepts images too
        return super().forward(x.flatten(1))


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks (conv-ReLU-maxpool) and a linear classifier, for 8x8 or 28x28 inputs."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, image_size: int = 28) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.classifier = nn.Linear(2 * width * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))
