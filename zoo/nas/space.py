"""A toy architecture search space for training-free NAS: ReLU MLPs of varying depth and widths.

An architecture is a tuple of hidden widths (``(64, 16)`` is ``in -> 64 -> 16 -> out``). Depth is
drawn uniformly from ``depths`` and every width independently from ``widths``
(:func:`sample_architectures`, distinct architectures, seeded). :func:`build` makes the network
with a given initialisation seed and :func:`train_architecture` trains it with the shared
:func:`zoo.training.train` loop (Adam, fixed epochs and batch size, the same for every
architecture) and returns its validation and test accuracy, the "ground truth" proxies are ranked
against.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from zoo.training import MLP, TensorData, evaluate, train
from zoo.training.seed import generator

__all__ = ["Arch", "sample_architectures", "build", "n_params", "train_architecture", "spearman"]

Arch = tuple[int, ...]


def sample_architectures(n: int, seed: int, depths: Sequence[int] = (1, 2, 3, 4),
                         widths: Sequence[int] = (2, 4, 8, 16, 32, 64, 128)) -> list[Arch]:
    """``n`` distinct architectures, drawn with a CPU generator seeded by ``seed``."""
    g = torch.Generator().manual_seed(7_919 * int(seed) + 101)
    seen: list[Arch] = []
    for _ in range(100 * n):
        d = int(depths[int(torch.randint(len(depths), (1,), generator=g))])
        arch = tuple(int(widths[int(i)]) for i in torch.randint(len(widths), (d,), generator=g))
        if arch not in seen:
            seen.append(arch)
        if len(seen) == n:
            return seen
    raise ValueError(f"the space has fewer than {n} distinct architectures")


def build(arch: Arch, in_features: int, num_classes: int, seed: int, device: str | torch.device = "cpu") -> nn.Module:
    """The MLP ``in -> arch... -> num_classes``, initialised from ``seed`` (PyTorch's default init)."""
    torch.manual_seed(int(seed))
    return MLP(in_features, list(arch), num_classes).to(device)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train_architecture(model: nn.Module, data: TensorData, x_val: torch.Tensor, y_val: torch.Tensor, *,
                       epochs: int, lr: float, batch_size: int, seed: int) -> dict[str, Any]:
    """Train ``model`` in place with Adam; its final validation and test accuracy (percent)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    train(model, data, opt, epochs=epochs, batch_size=batch_size, generator=generator(int(seed)), eval_every=0)
    return {"val_acc": evaluate(model, x_val, y_val)["acc"], "test_acc": evaluate(model, data.x_test, data.y_test)["acc"]}


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(list(a), list(b)).statistic)


def proxy_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: Sequence[str]) -> dict[str, float]:
    """Training-free scores of ``model`` (at its current weights) on the batch ``(x, y)``.

    Names: ``swap``, ``nwot``, ``params``, ``grad_norm``, ``snip``, ``synflow``.
    """
    from zoo.nas.nwot import nwot_score
    from zoo.nas.robot import grad_norm, snip, synflow
    from zoo.nas.swap import swap_score

    fns = {"swap": lambda: swap_score(model, x), "nwot": lambda: nwot_score(model, x),
           "params": lambda: float(n_params(model)), "grad_norm": lambda: grad_norm(model, x, y),
           "snip": lambda: snip(model, x, y), "synflow": lambda: synflow(model, x)}
    unknown = set(names) - set(fns)
    if unknown:
        raise ValueError(f"unknown proxies {sorted(unknown)}; known: {sorted(fns)}")
    return {n: float(fns[n]()) for n in names}


def evaluate_pool(archs: Sequence[Arch], data: TensorData, x_val: torch.Tensor, y_val: torch.Tensor, *,
                  proxies: Sequence[str], score_batch: int, epochs: int, lr: float, batch_size: int,
                  seed: int) -> dict[str, list[float]]:
    """Every architecture of the pool scored at initialisation, then trained; per-name lists.

    Architecture ``k`` is initialised from ``seed * 1000 + k``; the proxies read the first
    ``score_batch`` training examples of a seeded permutation (the same batch for every
    architecture); training uses the batch order of ``seed``.
    """
    g = torch.Generator().manual_seed(int(seed) + 12_345)
    idx = torch.randperm(data.n_train, generator=g)[:score_batch].to(data.x_train.device)
    xb, yb = data.x_train[idx], data.y_train[idx]
    in_features = int(torch.tensor(data.x_train.shape[1:]).prod())
    num_classes = int(data.num_classes)
    out: dict[str, list[float]] = {n: [] for n in [*proxies, "val_acc", "test_acc", "n_params"]}
    for k, arch in enumerate(archs):
        model = build(arch, in_features, num_classes, 1000 * int(seed) + k, data.x_train.device)
        for name, v in proxy_scores(model, xb, yb, proxies).items():
            out[name].append(v)
        out["n_params"].append(float(n_params(model)))
        for name, v in train_architecture(model, data, x_val, y_val, epochs=epochs, lr=lr,
                                          batch_size=batch_size, seed=seed).items():
            out[name].append(float(v))
    return out
