"""Learning rules without end-to-end back-propagation on the optimizer family's workloads.

Shared by the ``noprop_local_denoising``, ``backprop_free_training_comparison`` and
``instant_parameter_update_backprop`` experiments. Each rule is a :class:`Method` with
``run=`` (:func:`zoo.experiments._optbench.optbench` calls it with the workload's data, seed and
epochs); it returns the metrics and series of :func:`zoo.workloads.optim.run`: final ``val_acc``,
``test_acc`` (%), ``train_loss`` (the rule's own training loss, mean over the last epoch),
``grad_evals`` (mini-batch gradient computations: one per block step for NoProp, one per
mini-batch for the others, whose layers share one forward sweep) and ``diverged``; series
``val_acc``, ``test_acc``, ``train_loss`` per epoch.

Every rule trains the workload's MLP widths (``hidden_sizes``), the workload's batch size and
epochs, the batch order of the job's seed (:func:`zoo.training.seed.generator`), with Adam
(one per layer or block) at a learning rate from a grid: :func:`grid` makes one internal method
per grid point (``<name>_lr<x>``) and :func:`grid_derive` the reported arm ``<name>``, the point
with the best mean **validation** accuracy over seeds (ties: the smaller lr), with ``<workload>_lr``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Callable

import torch
from torch import nn

from zoo.experiment import Curve
from zoo.experiments._optbench import Method, lr_grid_best, slug
from zoo.harness import Experiment, Table, mean_band
from zoo.training import TensorData
from zoo.training.seed import generator
from zoo.workloads.optim import Workload, get_workload

__all__ = ["hidden_sizes", "local_run", "grid", "grid_derive", "with_curves", "noprop", "forward_forward", "mono_forward",
           "instant", "EVAL_SEED"]

EVAL_SEED = 777  # NoProp's inference noise: one fixed draw for every evaluation


def hidden_sizes(w: Workload, data: TensorData) -> list[int]:
    """The hidden widths of the workload's MLP (built under a forked RNG: the job's stream is untouched)."""
    with torch.random.fork_rng(devices=[]):
        model = w.model(data)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not isinstance(model, nn.Sequential) or any(isinstance(m, nn.Conv2d) for m in model.modules()):
        raise ValueError(f"{w.name}: local rules run on the MLP workloads (digits_mlp, mnist1d_mlp), not {type(model).__name__}")
    return [m.out_features for m in linears[:-1]]


def _acc(pred: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * float((pred == y).float().mean())


def local_run(w: Workload, data: TensorData, seed: int, epochs: int,
              epoch_fn: Callable[[torch.Generator], tuple[float, int]],
              predict_fn: Callable[[torch.Tensor], torch.Tensor]) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Train by ``epoch_fn(batch_generator) -> (mean loss, gradient computations)`` for ``epochs``; evaluate each epoch."""
    assert data.x_val is not None and data.y_val is not None
    g = generator(seed)
    series: dict[str, list[float]] = {"val_acc": [], "test_acc": [], "train_loss": []}
    evals = 0
    for _ in range(epochs):
        loss, n = epoch_fn(g)
        evals += n
        series["train_loss"].append(loss if math.isfinite(loss) else 1e30)
        series["val_acc"].append(_acc(predict_fn(data.x_val), data.y_val))
        series["test_acc"].append(_acc(predict_fn(data.x_test), data.y_test))
    diverged = any(v >= 1e30 for v in series["train_loss"])
    metrics = {"val_acc": series["val_acc"][-1], "test_acc": series["test_acc"][-1], "train_loss": series["train_loss"][-1],
               "grad_evals": float(evals), "diverged": float(diverged)}
    return metrics, series


def _in_features(data: TensorData) -> int:
    return math.prod(data.input_shape)


# ----------------------------------------------------------------------------- the rules
def noprop(lr: float, T: int = 10, eta: float = 0.1, learn_embedding: bool = True) -> Method:
    """NoProp-DT (:mod:`zoo.learning_rules.noprop`): per epoch, blocks ``1..T`` in turn, each over every batch."""
    from zoo.learning_rules import noprop as npm

    def run(cfg: dict[str, Any], w: Workload, data: TensorData, seed: int, epochs: int, device: str):
        model = npm.NoPropDT(_in_features(data), hidden_sizes(w, data), data.num_classes, T=int(cfg.get("noprop_T", T)),
                             eta=float(cfg.get("noprop_eta", eta)), learn_embedding=learn_embedding).to(device)
        opts = npm.make_optimizers(model, lr)

        def epoch(g: torch.Generator) -> tuple[float, int]:
            losses = []
            for t in range(1, model.T + 1):
                for x, y in data.batches(w.batch_size, g):
                    losses.append(npm.train_block_step(model, opts, t, x, y, g))
            return statistics.fmean(losses), len(losses)

        return local_run(w, data, seed, epochs, epoch,
                         lambda x: npm.predict(model, x, torch.Generator().manual_seed(EVAL_SEED)))

    return Method(run=run)


def forward_forward(lr: float, threshold: float = 2.0) -> Method:
    """Forward-Forward (:mod:`zoo.learning_rules.forward_forward`), every layer stepping on every batch."""
    from zoo.learning_rules import forward_forward as ffm

    def run(cfg: dict[str, Any], w: Workload, data: TensorData, seed: int, epochs: int, device: str):
        net = ffm.ForwardForwardNet(_in_features(data), hidden_sizes(w, data), data.num_classes,
                                    threshold=float(cfg.get("ff_threshold", threshold))).to(device)
        opts = ffm.make_optimizers(net, lr)

        def epoch(g: torch.Generator) -> tuple[float, int]:
            losses = [ffm.train_step(net, opts, x, y, g) for x, y in data.batches(w.batch_size, g)]
            return statistics.fmean(losses), len(losses)

        return local_run(w, data, seed, epochs, epoch, lambda x: ffm.predict(net, x))

    return Method(run=run)


def mono_forward(lr: float) -> Method:
    """Mono-Forward (:mod:`zoo.learning_rules.mono_forward`), every layer stepping on every batch."""
    from zoo.learning_rules import mono_forward as mfm

    def run(cfg: dict[str, Any], w: Workload, data: TensorData, seed: int, epochs: int, device: str):
        net = mfm.MonoForwardNet(_in_features(data), hidden_sizes(w, data), data.num_classes).to(device)
        opts = mfm.make_optimizers(net, lr)

        def epoch(g: torch.Generator) -> tuple[float, int]:
            losses = [mfm.train_step(net, opts, x, y) for x, y in data.batches(w.batch_size, g)]
            return statistics.fmean(losses), len(losses)

        return local_run(w, data, seed, epochs, epoch, lambda x: mfm.predict(net, x))

    return Method(run=run)


def instant(lr: float, through: str = "updated") -> Method:
    """The workload's own MLP (its initialisation) trained by :func:`zoo.learning_rules.instant_update.instant_update_step`."""
    from zoo.learning_rules.instant_update import instant_update_step

    def run(cfg: dict[str, Any], w: Workload, data: TensorData, seed: int, epochs: int, device: str):
        model = w.model(data).to(device)  # the seed's initialisation, as the shared loop builds it

        def epoch(g: torch.Generator) -> tuple[float, int]:
            losses = [instant_update_step(model, x, y, lr, through=through) for x, y in data.batches(w.batch_size, g)]  # type: ignore[arg-type]
            return statistics.fmean(losses), len(losses)

        def pred(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return model(x).argmax(1)

        return local_run(w, data, seed, epochs, epoch, pred)

    return Method(run=run)


# ----------------------------------------------------------------------------- grids
def grid(name: str, lrs: list[float] | tuple[float, ...], make: Callable[[float], Method]) -> dict[str, Method]:
    """One internal method ``<name>_lr<x>`` per learning rate."""
    return {f"{name}_lr{slug(float(lr))}": make(float(lr)) for lr in lrs}


def grid_derive(grids: Callable[[dict[str, Any]], dict[str, list[float]]]):
    """``extra_derive`` adding, per grid ``name``, the arm ``name``: its best point by mean validation accuracy."""

    def derive(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
        n = len(table.seeds)
        for name, lrs in grids(cfg).items():
            row: dict[str, list[float]] = {}
            for wname in cfg["workloads"]:
                arms = [(f"{name}_lr{slug(float(lr))}__{wname}", float(lr)) for lr in lrs]
                pick, lr = lr_grid_best(table, arms, "val_acc", True)
                for k, v in table.metrics_of(pick).items():
                    row[f"{wname}_{k}"] = v
                row[f"{wname}_lr"] = [lr] * n
            derived[name] = row
            for lr in lrs:
                derived.pop(f"{name}_lr{slug(float(lr))}", None)

    return derive


def with_curves(exp: Experiment, grids: Callable[[dict[str, Any]], dict[str, list[float]]],
                fixed: Callable[[dict[str, Any]], list[str]], lr_label: str = "learning rate (Adam)") -> Experiment:
    """``exp`` with plots of the reported arms: test accuracy per epoch, and accuracy vs lr per grid."""

    def curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
        assert exp.derive is not None
        derived = exp.derive(cfg, table)
        out: list[Curve] = []
        for wname in cfg["workloads"]:
            w = get_workload(wname)
            series, bands = {}, {}
            for m in fixed(cfg):
                if f"{m}__{wname}" in table:
                    series[m], bands[m] = mean_band(table.series(f"{m}__{wname}", "test_acc"))
                elif f"{wname}_lr" in derived.get(m, {}):  # an optbench grid method: its validation pick
                    lr = derived[m][f"{wname}_lr"][0]
                    label = f"{m} (lr {lr:g}, by validation)"
                    series[label], bands[label] = mean_band(table.series(f"{m}__{wname}__lr{slug(lr)}", "test_acc"))
            for name in grids(cfg):
                lr = derived[name][f"{wname}_lr"][0]
                label = f"{name} (lr {lr:g}, by validation)"
                series[label], bands[label] = mean_band(table.series(f"{name}_lr{slug(lr)}__{wname}", "test_acc"))
            n = len(next(iter(series.values())))
            out.append(Curve(title=f"{w.description}: test acc. per epoch ({len(table.seeds)} seeds, min-max)",
                             x=[float(e) for e in range(1, n + 1)], series=series, bands=bands, xlabel="epoch",
                             ylabel="test accuracy (%)"))
            sens, style = {}, {}
            xs: list[float] | None = None
            for name, lrs in grids(cfg).items():
                vals = [statistics.fmean(table.metric(f"{name}_lr{slug(float(lr))}__{wname}", "val_acc")) for lr in lrs]
                if xs is None:
                    xs = [float(v) for v in lrs]
                if [float(v) for v in lrs] == xs:
                    sens[name], style[name] = vals, "o-"
            for m in fixed(cfg):  # optbench grid methods on the same grid
                arms = [f"{m}__{wname}__lr{slug(x)}" for x in xs or []]
                if arms and all(a in table for a in arms):
                    sens[m], style[m] = [statistics.fmean(table.metric(a, "val_acc")) for a in arms], "s--"
            if sens and xs is not None and len(xs) > 1:
                out.append(Curve(title=f"{w.description}: final val. acc. vs lr (mean, {len(table.seeds)} seeds)",
                                 x=xs, series=sens, style=style, xlabel=lr_label, ylabel="validation accuracy (%)",
                                 logx=True))
        return out

    return dataclasses.replace(exp, curves=curves)
