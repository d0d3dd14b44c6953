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
``lstsq``          linear least squares 50 → 1, known optimum  synthetic 1,600 / 400 / 1,000
=================  ==========================================  =========================

``lstsq`` is the convex workload: a fixed, ill-conditioned regression problem (feature scales
spread over two decades, condition number 10^4 of the design's Gram matrix) generated from
:data:`DATA_SEED` without any file, whose training-set minimiser is computed in closed form, so
its metric is the suboptimality of the final iterate, ``log10(F(w_T) - F*)``.

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

__all__ = ["Workload", "WORKLOADS", "SPLIT_SEED", "DATA_SEED", "get_workload", "load", "run", "OptimizerFactory", "lstsq_data", "least_squares_optimum", "mse_loss"]

SPLIT_SEED = 12345  # the validation split: one draw, shared by every arm and seed
DATA_SEED = 2024  # the synthetic workloads' problem: one draw, the same for every seed
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
    task: str = "classification"  # or "regression": MSE loss, suboptimality metrics

    @property
    def objective(self) -> tuple[str, bool]:
        """The validation metric a tuner selects by, and whether higher is better."""
        return ("val_acc", True) if self.task == "classification" else ("val_loss", False)


def _mlp(hidden: list[int]) -> Callable[[TensorData], nn.Module]:
    return lambda d: MLP(math.prod(d.input_shape), hidden, d.num_classes)


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("mnist1d_mlp", "mnist1d", True, _mlp([128, 128]), 30, 128, "MLP [128, 128] on MNIST-1D"),
        Workload("digits_logreg", "digits", True, _mlp([]), 30, 64, "multinomial logistic regression on digits"),
        Workload("mnist5k_cnn", "mnist5k", False,
                 lambda d: SmallCNN(d.input_shape[0], d.num_classes, image_size=d.input_shape[-1]), 6, 128,
                 "SmallCNN on the 5,000-image MNIST subset"),
        Workload("digits_mlp", "digits", True, _mlp([64]), 30, 64, "MLP [64] on digits"),
        Workload("lstsq", "synthetic_lstsq", True, lambda d: nn.Linear(d.input_shape[0], 1), 20, 32,
                 "ill-conditioned linear least squares with a known optimum", task="regression"),
    )
}


def lstsq_data(n_train: int = 2000, n_test: int = 1000, dim: int = 50, noise: float = 0.1,
               seed: int = DATA_SEED) -> TensorData:
    """The ``lstsq`` problem: ``y = x w* + 0.5 + noise``, ``w* ~ N(0, I)``, feature ``j`` scaled by ``10^(-2 j / (dim-1))``.

    Float32, CPU; ``num_classes`` is 0 (a regression). The same tensors for any caller.
    """
    g = torch.Generator().manual_seed(seed)
    scales = torch.logspace(0, -2, dim)
    x = torch.randn(n_train + n_test, dim, generator=g) * scales
    w = torch.randn(dim, generator=g)
    y = (x @ w + 0.5 + noise * torch.randn(n_train + n_test, generator=g)).unsqueeze(1)
    return TensorData(x[:n_train], y[:n_train], x[n_train:], y[n_train:], 0, "synthetic_lstsq")


def least_squares_optimum(x: torch.Tensor, y: torch.Tensor) -> float:
    """``F* = min_{w, b} mean (x w + b - y)^2``, in float64 by the normal equations' QR solve."""
    a = torch.cat([x.double(), torch.ones(x.shape[0], 1, dtype=torch.float64, device=x.device)], 1)
    sol = torch.linalg.lstsq(a.cpu(), y.double().cpu()).solution.to(x.device)
    return float(((a @ sol - y.double()) ** 2).mean())


def mse_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.mse_loss(model(x), y)


@torch.no_grad()
def _mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.nn.functional.mse_loss(model(x), y))


def get_workload(name: str) -> Workload:
    """The workload ``name``; an unknown name lists the suite."""
    try:
        return WORKLOADS[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; the suite has {', '.join(WORKLOADS)}") from None


def load(workload: Workload, data_dir: str | Path, device: str | torch.device = "cpu",
         n_train: int | None = None, n_test: int | None = None) -> TensorData:
    """The workload's data on ``device``, with its validation split (optionally a smaller budget)."""
    if workload.dataset == "synthetic_lstsq":
        data = _to(lstsq_data(), device)
    else:
        data = load_dataset(workload.dataset, data_dir, device, flatten=workload.flatten)
    return data.subset(n_train, n_test).with_validation(VAL_FRACTION, SPLIT_SEED)


def _to(d: TensorData, device: str | torch.device) -> TensorData:
    return TensorData(d.x_train.to(device), d.y_train.to(device), d.x_test.to(device), d.y_test.to(device),
                      d.num_classes, d.name)


def _eval_mode(opt: torch.optim.Optimizer, on: bool) -> None:
    """Schedule-Free-style optimizers evaluate at their averaged point: ``opt.eval()`` / ``opt.train()``."""
    fn = getattr(opt, "eval" if on else "train", None)
    if callable(fn):
        fn()


def run(
    workload: Workload,
    data: TensorData,
    make_optimizer: OptimizerFactory,
    seed: int,
    *,
    epochs: int | None = None,
    device: str | torch.device = "cpu",
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    model: nn.Module | None = None,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Train ``workload`` with ``make_optimizer`` on ``seed``; returns (metrics, per-epoch series).

    The caller (a harness job) has seeded everything with ``seed``, so the model built here is
    the seed's initialisation for every arm (``model`` replaces it, e.g. a method's own wrapper of
    it). Every optimizer step is ``step(closure)`` (:func:`zoo.training.train`); an optimizer
    with ``train()``/``eval()`` (Schedule-Free) is switched to ``eval()`` for every evaluation.
    ``loss`` replaces the workload's (cross-entropy, or MSE for a regression) in training only.

    Classification metrics: final ``val_acc``, ``test_acc`` (%), ``train_loss``; series
    ``val_acc``, ``test_acc`` and ``train_loss`` per epoch. Regression metrics: ``val_loss``,
    ``test_loss``, ``train_loss`` and ``subopt`` = ``log10(F(w_T) - F*)`` on the training split
    (full batch, at the evaluated point); series ``val_loss`` and ``subopt`` per epoch. Both:
    ``grad_evals``, the mini-batch gradient evaluations (SAM takes two per step), and
    ``diverged`` (1 when the training loss became non-finite; the metrics are then NaN-free
    worst values: chance accuracy, infinite losses are reported as 1e30).
    """
    if data.x_val is None or data.y_val is None:
        raise ValueError(f"{workload.name}: the data has no validation split; load it with zoo.workloads.optim.load")
    epochs = workload.epochs if epochs is None else epochs
    regression = workload.task == "regression"
    model = (workload.model(data) if model is None else model).to(device)
    steps = epochs * -(-data.n_train // workload.batch_size)
    opt, sched = make_optimizer(list(model.parameters()), steps)
    f_star = least_squares_optimum(data.x_train, data.y_train) if regression else 0.0
    series: dict[str, list[float]] = {k: [] for k in (("val_loss", "subopt") if regression else ("val_acc", "test_acc"))}
    diverged = False

    def measure() -> dict[str, float]:
        _eval_mode(opt, True)
        model.eval()
        try:
            if regression:
                gap = _mse(model, data.x_train, data.y_train) - f_star
                return {"val_loss": _mse(model, data.x_val, data.y_val), "test_loss": _mse(model, data.x_test, data.y_test),
                        "subopt": math.log10(max(gap, 1e-30)) if math.isfinite(gap) else 30.0}
            return {"val_acc": evaluate(model, data.x_val, data.y_val)["acc"],
                    "test_acc": evaluate(model, data.x_test, data.y_test)["acc"]}
        finally:
            model.train()
            _eval_mode(opt, False)

    last: dict[str, float] = {}

    def on_epoch(epoch: int, hist: object) -> None:
        last.update(measure())
        for k in series:
            series[k].append(last[k])

    _eval_mode(opt, False)
    hist = train(model, data, opt, epochs=epochs, batch_size=workload.batch_size, generator=generator(seed),
                 loss=loss or (mse_loss if regression else _ce), scheduler=sched, eval_every=0, on_epoch=on_epoch)
    diverged = not all(math.isfinite(v) for v in hist.train_loss)
    metrics = {**last, "train_loss": hist.train_loss[-1], "grad_evals": float(hist.grad_evals), "diverged": float(diverged)}
    metrics = {k: (v if math.isfinite(v) else 1e30) for k, v in metrics.items()}
    series["train_loss"] = [v if math.isfinite(v) else 1e30 for v in hist.train_loss]
    return metrics, series


def _ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(x), y)
