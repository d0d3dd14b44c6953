"""The optimizer family's shared workload suite: named tasks with train/validation/test splits.

Every optimizer reproduction trains on these, through the experiment harness, so that arms
compared by a claim share data, model, initialisation, batch order, budget and schedule, and a
tuned baseline is chosen on the validation split, never the test split:

=================  ==========================================  =========================
name               model                                       data (train / val / test)
=================  ==========================================  =========================
``mnist1d_mlp``    MLP 40 → 128 → 128 → 10                     MNIST-1D 3,200 / 800 / 1,000
``digits_logreg``  multinomial logistic regression 64 → 10     digits 1,038 / 259 / 500
``mnist5k_cnn``    SmallCNN (two conv blocks), 28×28 inputs    MNIST-5k 3,200 / 800 / 1,000
``digits_mlp``     MLP 64 → 64 → 10                            digits 1,038 / 259 / 500
=================  ==========================================  =========================

:func:`run` trains one workload with one optimizer factory on one seed and returns the
metrics and per-epoch series a :class:`zoo.harness.JobOutput` carries. The validation split is
carved from the training data with a fixed seed (:data:`SPLIT_SEED`), the same for every arm and
seed; the model's initialisation and the batch order come from the job's seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from zoo.training import MLP, SmallCNN, TensorData, evaluate, load_dataset, train
from zoo.training.seed import generator

__all__ = ["Workload", "WORKLOADS", "SPLIT_SEED", "get_workload", "load", "run", "OptimizerFactory"]

SPLIT_SEED = 12345  # the validation split: one draw, shared by every arm and seed
VAL_FRACTION = 0.2

# (parameters, total optimizer steps) -> (optimizer, scheduler or None)
OptimizerFactory = Callable[[list[nn.Parameter], int], tuple[torch.optim.Optimizer, object | None]]


@dataclass(frozen=True)
class Workload:
    """One task of the suite: a dataset, a model factory and a default budget."""

    name: str
    dataset: str
    flatten: bool
    model: Callable[[TensorData], nn.Module]
    epochs: int
    batch_size: int
    description: str


def _mlp(hidden: list[int]) -> Callable[[TensorData], nn.Module]:
    return lambda d: MLP(math.prod(d.input_shape), hidden, d.num_classes)


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("mnist1d_mlp", "mnist1d", True, _mlp([128, 128]), 30, 128, "MLP [128, 128] on MNIST-1D"),
        Workload("digits_logreg", "digits", True, _mlp([]), 30, 64, "multinomial logistic regression on digits"),
        Workload("mnist5k_cnn", "mnist5k", False,
                 lambda d: SmallCNN(d.input_shape[0], d.num_classes, image_size=d.input_shape[-1]), 10, 128,
                 "SmallCNN on the 5,000-image MNIST subset"),
        Workload("digits_mlp", "digits", True, _mlp([64]), 30, 64, "MLP [64] on digits"),
    )
}


def get_workload(name: str) -> Workload:
    """The workload ``name``; an unknown name lists the suite."""
    try:
        return WORKLOADS[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; the suite has {', '.join(WORKLOADS)}") from None


def load(workload: Workload, data_dir: str | Path, device: str | torch.device = "cpu",
         n_train: int | None = None, n_test: int | None = None) -> TensorData:
    """The workload's data on ``device``, with its validation split (optionally a smaller budget)."""
    data = load_dataset(workload.dataset, data_dir, device, flatten=workload.flatten)
    return data.subset(n_train, n_test).with_validation(VAL_FRACTION, SPLIT_SEED)


def run(
    workload: Workload,
    data: TensorData,
    make_optimizer: OptimizerFactory,
    seed: int,
    *,
    epochs: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Train ``workload`` with ``make_optimizer`` on ``seed``; returns (metrics, per-epoch series).

    The caller (a harness job) has seeded everything with ``seed``, so the model built here is
    the seed's initialisation for every arm. Metrics: final ``val_acc``, ``test_acc`` (%),
    ``train_loss``; series: ``val_acc`` and ``train_loss`` per epoch.
    """
    if data.x_val is None or data.y_val is None:
        raise ValueError(f"{workload.name}: the data has no validation split; load it with zoo.workloads.optim.load")
    epochs = workload.epochs if epochs is None else epochs
    model = workload.model(data).to(device)
    steps = epochs * -(-data.n_train // workload.batch_size)
    opt, sched = make_optimizer(list(model.parameters()), steps)
    val: list[float] = []

    def on_epoch(epoch: int, hist: object) -> None:
        val.append(evaluate(model, data.x_val, data.y_val)["acc"])

    hist = train(model, data, opt, epochs=epochs, batch_size=workload.batch_size, generator=generator(seed),
                 scheduler=sched, eval_every=0, on_epoch=on_epoch)
    metrics = {
        "val_acc": val[-1],
        "test_acc": evaluate(model, data.x_test, data.y_test)["acc"],
        "train_loss": hist.train_loss[-1],
    }
    return metrics, {"val_acc": val, "train_loss": list(hist.train_loss)}
