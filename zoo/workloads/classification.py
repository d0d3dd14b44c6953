"""The classification workload suite: datasets with splits, label noise, imbalance, few labels, models.

Everything a loss, calibration or noisy-label reproduction varies about its *data* is built here,
deterministically from a seed, so that every arm of a claim sees the same examples, the same
corrupted labels and the same splits (:func:`make_task`):

* **Datasets** (:func:`load_base`): the prepared ``digits``, ``mnist5k`` and ``mnist1d`` (see
  :mod:`zoo.data`), scikit-learn's bundled ``breast_cancer``, and generated ``synth``
  (``make_classification``: any number of classes) -- none downloads at run time.
* **One-vs-rest** (:func:`one_vs_rest`): a binary task, optionally with the positive class
  subsampled to a target share (train and test alike).
* **Long-tail imbalance** (:func:`long_tail`): class ``c`` keeps ``n_max * ratio^(-c/(C-1))``
  training examples (Cao et al. 2019's exponential profile; the test set stays balanced).
* **Label noise** (:func:`inject_noise`): ``symmetric`` flips exactly ``round(rate * n)``
  labels, each to a uniformly drawn *other* class; ``pairflip`` sends class ``c`` to
  ``(c + 1) mod C`` (Han et al. 2018); ``asymmetric`` is Patrini et al.'s MNIST map
  2->7, 3->8, 5<->6, 7->1 applied to a ``rate`` share of those classes. The clean labels and the
  corrupted mask are kept, so memorisation can be measured. Training *and* validation labels
  are corrupted (a practitioner's validation set is as noisy as the rest); test labels are clean.
* **Few labels** (:func:`few_labels`): ``k`` labelled examples per class; the rest keep their
  inputs with the label :data:`UNLABELLED` (``-100``, cross-entropy's ``ignore_index``).
* **Models** (:func:`build_model`): ``mlp`` (hidden widths), ``cnn`` (:class:`SmallCNN`) and
  ``linear`` (multinomial logistic regression).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.training import MLP, SmallCNN, TensorData, load_dataset

__all__ = [
    "UNLABELLED", "Task", "load_base", "one_vs_rest", "long_tail", "inject_noise", "few_labels", "make_task",
    "build_model", "MNIST_ASYMMETRIC",
]

UNLABELLED = -100
"""The label of an example whose label is withheld (``F.cross_entropy``'s default ``ignore_index``)."""

MNIST_ASYMMETRIC = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}
"""Patrini et al. (2017)'s class-dependent noise for MNIST-like digits."""

_PREPARED = ("digits", "mnist5k", "mnist1d")


@dataclass
class Task:
    """One classification problem as every arm of a claim sees it (tensors on one device).

    ``y_train``/``y_val`` are the *observed* labels (noisy, or :data:`UNLABELLED`);
    ``y_train_clean``/``y_val_clean`` the true ones; ``noisy`` marks corrupted training labels.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    y_train_clean: torch.Tensor
    noisy: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    y_val_clean: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    name: str = ""

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def labelled(self) -> torch.Tensor:
        return self.y_train != UNLABELLED

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _generator(seed: int, stream: int) -> torch.Generator:
    # One independent CPU stream per construction step, so adding a step never shifts another's draws.
    return torch.Generator().manual_seed(1_000_003 * int(seed) + 7919 * stream + 17)


def _sklearn(name: str, spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, int]:
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        x, y = load_breast_cancer(return_X_y=True)
        return x.astype(np.float32), y.astype(np.int64), 2
    from sklearn.datasets import make_classification

    classes = int(spec.get("classes", 10))
    informative = int(spec.get("informative", max(2, min(20, int(np.ceil(np.log2(classes))) + 6))))
    x, y = make_classification(
        n_samples=int(spec.get("n", 4000)) + int(spec.get("n_test", 2000)), n_features=int(spec.get("features", 32)),
        n_informative=informative, n_redundant=int(spec.get("redundant", 0)), n_classes=classes,
        n_clusters_per_class=int(spec.get("clusters", 1)), class_sep=float(spec.get("class_sep", 1.0)),
        flip_y=0.0, random_state=int(spec.get("seed", 0)),
    )
    return x.astype(np.float32), y.astype(np.int64), classes


def load_base(dataset: str | dict[str, Any], data_dir: str | Path, device: str | torch.device = "cpu") -> TensorData:
    """The dataset's train and test splits on ``device``, inputs in [0, 1] or standardised.

    ``dataset`` is a prepared name or ``{"name": "synth", "classes": .., "n": .., "n_test": ..,
    "features": .., "class_sep": .., "seed": ..}`` / ``{"name": "breast_cancer"}``.
    """
    spec = {"name": dataset} if isinstance(dataset, str) else dict(dataset)
    name = str(spec["name"])
    if name in _PREPARED:
        return load_dataset(name, data_dir, device)
    if name not in ("synth", "breast_cancer"):
        raise ValueError(f"unknown dataset {name!r}: use one of {[*_PREPARED, 'synth', 'breast_cancer']}")
    x, y, classes = _sklearn(name, spec)
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    perm = rng.permutation(len(y))
    n_test = int(spec.get("n_test", 2000)) if name == "synth" else int(spec.get("n_test", len(y) // 4))
    te, tr = perm[:n_test], perm[n_test:]
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-8  # standardise with training statistics only
    x = (x - mu) / sd
    dev = torch.device(device)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)  # noqa: E731
    return TensorData(t(x[tr]), t(y[tr]), t(x[te]), t(y[te]), classes, name)


def _subsample_class(y: torch.Tensor, cls_mask: torch.Tensor, keep: int, g: torch.Generator) -> torch.Tensor:
    """Indices of all examples outside ``cls_mask`` plus ``keep`` random ones inside it, sorted."""
    inside = cls_mask.nonzero().squeeze(1).cpu()
    outside = (~cls_mask).nonzero().squeeze(1).cpu()
    chosen = inside[torch.randperm(inside.numel(), generator=g)[:keep]]
    return torch.cat([outside, chosen]).sort().values.to(y.device)


def one_vs_rest(data: TensorData, positive: list[int], pos_fraction: float | None, seed: int) -> TensorData:
    """Binary task: label 1 for ``positive`` classes; the positives subsampled to ``pos_fraction``."""
    out = []
    for k, (x, y) in enumerate(((data.x_train, data.y_train), (data.x_test, data.y_test))):
        yb = torch.isin(y, torch.tensor(positive, device=y.device)).long()
        if pos_fraction is not None:
            n_neg = int((yb == 0).sum())
            keep = int(round(pos_fraction * n_neg / (1.0 - pos_fraction)))
            keep = max(1, min(keep, int(yb.sum())))
            idx = _subsample_class(yb, yb == 1, keep, _generator(seed, 10 + k))
            x, yb = x[idx], yb[idx]
        out.append((x, yb))
    return TensorData(out[0][0], out[0][1], out[1][0], out[1][1], 2, f"{data.name}-ovr")


def long_tail(data: TensorData, ratio: float, seed: int) -> TensorData:
    """Training classes subsampled to ``n_max * ratio^(-c/(C-1))``; the test split unchanged."""
    C = data.num_classes
    counts = torch.bincount(data.y_train, minlength=C)
    n_max = int(counts.max())
    keep_idx = []
    g = _generator(seed, 20)
    for c in range(C):
        want = int(n_max * ratio ** (-c / max(C - 1, 1)))
        members = (data.y_train == c).nonzero().squeeze(1).cpu()
        keep_idx.append(members[torch.randperm(members.numel(), generator=g)[: max(1, want)]])
    idx = torch.cat(keep_idx).sort().values.to(data.y_train.device)
    return replace(data, x_train=data.x_train[idx], y_train=data.y_train[idx], name=f"{data.name}-lt{ratio:g}")


def inject_noise(y: torch.Tensor, num_classes: int, kind: str, rate: float, seed: int,
                 stream: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupted labels and the mask of corrupted examples (see the module docstring)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise rate must be in [0, 1), got {rate}")
    g = _generator(seed, stream)
    yc = y.cpu()
    n = yc.numel()
    if kind == "symmetric":
        flip = torch.zeros(n, dtype=torch.bool)
        flip[torch.randperm(n, generator=g)[: int(round(rate * n))]] = True
        # a uniformly drawn *other* class: add 1..C-1 modulo C
        shift = torch.randint(1, num_classes, (n,), generator=g)
        noisy_y = torch.where(flip, (yc + shift) % num_classes, yc)
    elif kind in ("pairflip", "asymmetric"):
        if kind == "pairflip":
            target = (yc + 1) % num_classes
            eligible = torch.ones(n, dtype=torch.bool)
        else:
            table = torch.arange(num_classes)
            for a, b in MNIST_ASYMMETRIC.items():
                if a < num_classes and b < num_classes:
                    table[a] = b
            target = table[yc]
            eligible = target != yc
        flip = eligible & (torch.rand(n, generator=g) < rate)
        noisy_y = torch.where(flip, target, yc)
    else:
        raise ValueError(f"unknown noise kind {kind!r}: use symmetric, pairflip or asymmetric")
    return noisy_y.to(y.device), (noisy_y != yc).to(y.device)


def few_labels(y: torch.Tensor, num_classes: int, per_class: int, seed: int) -> torch.Tensor:
    """Labels with all but ``per_class`` random examples per class replaced by :data:`UNLABELLED`."""
    g = _generator(seed, 40)
    keep = torch.zeros(y.numel(), dtype=torch.bool)
    yc = y.cpu()
    for c in range(num_classes):
        members = (yc == c).nonzero().squeeze(1)
        keep[members[torch.randperm(members.numel(), generator=g)[:per_class]]] = True
    return torch.where(keep.to(y.device), y, torch.full_like(y, UNLABELLED))


def make_task(cfg: dict[str, Any], base: TensorData, seed: int) -> Task:
    """The task of a config (one setting) for ``seed``; the keys it reads, in the order applied:

    ``binary: {positive: [..], pos_fraction: ..}``, ``imbalance: {ratio: ..}``, ``n_train``,
    ``val_fraction`` (default 0.2; 0 uses the test split for nothing but testing and leaves
    validation empty), ``noise: {kind: .., rate: ..}``, ``labels_per_class``.
    """
    data = base
    if cfg.get("binary"):
        b = cfg["binary"]
        data = one_vs_rest(data, [int(c) for c in b["positive"]], b.get("pos_fraction"), seed)
    if cfg.get("imbalance"):
        data = long_tail(data, float(cfg["imbalance"]["ratio"]), seed)
    if cfg.get("n_train"):
        data = data.subset(n_train=int(cfg["n_train"]))
    if cfg.get("n_test"):
        data = data.subset(n_test=int(cfg["n_test"]))
    frac = float(cfg.get("val_fraction", 0.2))
    if frac > 0:
        data = data.with_validation(frac, seed=int(seed))
        x_val, y_val = data.x_val, data.y_val
    else:
        x_val, y_val = data.x_train[:0], data.y_train[:0]
    assert x_val is not None and y_val is not None
    y_tr, y_va = data.y_train, y_val
    noisy = torch.zeros_like(y_tr, dtype=torch.bool)
    if cfg.get("noise") and float(cfg["noise"].get("rate", 0)) > 0:
        kind, rate = str(cfg["noise"]["kind"]), float(cfg["noise"]["rate"])
        y_tr, noisy = inject_noise(data.y_train, data.num_classes, kind, rate, seed, stream=30)
        y_va, _ = inject_noise(y_val, data.num_classes, kind, rate, seed, stream=31)
    if cfg.get("labels_per_class"):
        y_tr = few_labels(y_tr, data.num_classes, int(cfg["labels_per_class"]), seed)
    return Task(data.x_train, y_tr, data.y_train, noisy, x_val, y_va, y_val, data.x_test, data.y_test,
                data.num_classes, data.name)


def build_model(spec: dict[str, Any], task: Task) -> nn.Module:
    """``{kind: mlp, hidden: [..]}``, ``{kind: cnn, width: ..}`` or ``{kind: linear}`` for ``task``."""
    kind = spec.get("kind", "mlp")
    features = int(np.prod(task.input_shape))
    if kind == "mlp":
        return MLP(features, [int(h) for h in spec.get("hidden", [128])], task.num_classes)
    if kind == "linear":
        return MLP(features, [], task.num_classes)
    if kind == "cnn":
        shape = task.input_shape
        if len(shape) != 3:
            raise ValueError(f"model kind 'cnn' needs image inputs (C, H, W), got shape {shape}")
        return SmallCNN(shape[0], task.num_classes, int(spec.get("width", 16)), shape[-1])
    raise ValueError(f"unknown model kind {kind!r}: use mlp, cnn or linear")
