"""On-device tensor datasets with batched indexing.

The zoo's datasets have a few thousand examples: they fit on any device many times over, so they
live there as tensors and a batch is an index into them. A DataLoader's per-batch Python and
collation overhead would dominate training time at this size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

__all__ = ["TensorData", "load_dataset"]

# Divide raw intensities by this to map them to [0, 1].
_SCALE = {"digits": 16.0, "mnist5k": 255.0}


@dataclass
class TensorData:
    """Train, test and (optionally) validation tensors on one device.

    The validation split, when present, is carved out of the training data by
    :meth:`with_validation`; tuning reads it, never the test split.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    name: str = ""
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled mini-batches (the last one may be smaller).

        The permutation is drawn on the CPU from ``generator`` so the order is the same on every
        device, then moved over once per epoch.
        """
        perm = torch.randperm(self.n_train, generator=generator).to(self.x_train.device)
        for start in range(0, self.n_train, batch_size):
            idx = perm[start : start + batch_size]
            yield self.x_train[idx], self.y_train[idx]

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "TensorData":
        """The first ``n_train``/``n_test`` examples (a smaller budget, e.g. for ``--quick``)."""
        return TensorData(
            self.x_train[:n_train], self.y_train[:n_train], self.x_test[:n_test], self.y_test[:n_test],
            self.num_classes, self.name, self.x_val, self.y_val,
        )

    def with_validation(self, fraction: float = 0.2, seed: int = 0) -> "TensorData":
        """Move a random ``fraction`` of the training examples into a validation split.

        The split depends on ``seed`` only (a CPU generator), so it is the same on every device
        and for every arm; the test split is untouched.
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
        if self.x_val is not None:
            raise ValueError(f"{self.name or 'dataset'} already has a validation split")
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(self.n_train, generator=g).to(self.x_train.device)
        n_val = max(1, round(fraction * self.n_train))
        val, train = perm[:n_val], perm[n_val:].sort().values
        return TensorData(
            self.x_train[train], self.y_train[train], self.x_test, self.y_test, self.num_classes, self.name,
            self.x_train[val], self.y_train[val],
        )


def load_dataset(
    name: str,
    data_dir: str | Path,
    device: str | torch.device = "cpu",
    flatten: bool = False,
    standardize: bool = False,
) -> TensorData:
    """Load ``data/<name>/`` (see :mod:`zoo.data`) onto ``device`` as float32 inputs in [0, 1].

    ``flatten`` reshapes images to vectors (for MLPs); otherwise images get a channel axis
    (``N, 1, H, W``) for convolutions. ``standardize`` subtracts the train mean and divides by
    the train standard deviation (one scalar each).
    """
    root = Path(data_dir) / name
    if not (root / "meta.json").is_file():
        raise FileNotFoundError(f"{root}: dataset {name!r} is not prepared; run `python -m zoo.data prepare`")
    meta = json.loads((root / "meta.json").read_text())
    arrays = {k: np.load(root / f"{k}.npy") for k in ("x_train", "y_train", "x_test", "y_test")}
    scale = _SCALE.get(name, 1.0)
    xs = []
    for k in ("x_train", "x_test"):
        x = torch.from_numpy(arrays[k].astype(np.float32)) / scale
        if flatten:
            x = x.reshape(x.shape[0], -1)
        elif x.ndim == 3:
            x = x.unsqueeze(1)
        xs.append(x)
    if standardize:
        mu, sd = xs[0].mean(), xs[0].std()
        xs = [(x - mu) / sd for x in xs]
    ys = [torch.from_numpy(arrays[k]) for k in ("y_train", "y_test")]
    dev = torch.device(device)
    return TensorData(xs[0].to(dev), ys[0].to(dev), xs[1].to(dev), ys[1].to(dev), int(meta["classes"]), name)
