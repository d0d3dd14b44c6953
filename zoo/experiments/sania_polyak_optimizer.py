"""SANIA (Abdukhakimov et al., 2023) at small scale: scale invariance, and training without a learning rate.

Every arm trains a workload of the shared suite (:mod:`zoo.workloads.optim`) through the shared
:func:`zoo.workloads.optim.run`, in **float64** (so that the invariance test measures the method,
not float32 rounding), either on the workload's data or on a **badly scaled copy**: feature ``j``
multiplied by a fixed factor ``v_j = 10^{u_j}``, ``u_j ~ U(-scale_decades, scale_decades)`` drawn
once from ``scale_seed`` (the same factors for every arm and seed; train, validation and test
scaled alike). A scaled arm starts from the *equivalent* initialisation: the seed's model with its
first linear layer's input columns divided by ``v_j``, so that its predictions, and the loss, are
the unscaled arm's at step 0. A scale-invariant method then follows exactly the mapped trajectory
(same losses and accuracies); Adam, AdaGrad or SGD do not.

Arms (``<arm>`` on the workload's data, ``<arm>_scaled`` on the scaled copy):

* ``sania_adagrad_inv`` / ``sania_adam_inv``: SANIA AdaGrad-SQR / Adam-SQR (lr 1, no tuning) with
  the floor ``eps = 1e-30`` that never binds on a coordinate with a gradient: the paper's
  scale-invariant methods;
* ``sania_adagrad`` / ``sania_adam``: the same at the authors' code default ``eps = 0.1`` (a floor
  on ``B_t`` that binds on small-gradient coordinates and so breaks invariance);
* ``adam_default``: Adam at lr 1e-3 (torch's default), untuned;
* ``adam_tuned``: Adam at the family's tuned learning rate for the workload (chosen on the
  unscaled validation split, ``reproductions/_baselines/optim/tuned.json``), run on both copies;
* ``adam_grid_scaled``: Adam tuned on the scaled copy itself: the grid point of ``adam_lrs`` with
  the best mean validation accuracy (internal arms ``adam_scaled_lr<x>``), a fair tuned baseline
  for the badly scaled problem.

:func:`_derive_gaps` adds, per invariance pair, ``<workload>_loss_gap`` (``|L_s - L| / L`` of the
final training loss, per seed) and ``<workload>_acc_gap`` (``|acc_s - acc|`` test accuracy) to
the unscaled arm's metrics.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch import nn

from zoo.experiments._optbench import Method, lr_grid_best, optbench, slug, tuned_record
from zoo.optim.sania import SANIAAdaGradSQR, SANIAAdamSQR
from zoo.harness import Table
from zoo.training import TensorData
from zoo.workloads.optim import Workload, run

__all__ = ["EXPERIMENT", "scale_factors", "scaled_copy", "rescale_first_layer", "INVARIANCE_PAIRS"]

Opt = Callable[[list[nn.Parameter], int], tuple[torch.optim.Optimizer, Any]]

INVARIANCE_PAIRS = ("sania_adagrad_inv", "sania_adam_inv", "sania_adagrad", "sania_adam", "adam_default", "adam_tuned")


def scale_factors(dim: int, decades: float, seed: int) -> torch.Tensor:
    """``v_j = 10^{u_j}``, ``u_j ~ U(-decades, decades)``: float64, from a CPU generator seeded ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    return 10.0 ** ((2.0 * torch.rand(dim, generator=g, dtype=torch.float64) - 1.0) * float(decades))


def scaled_copy(data: TensorData, v: torch.Tensor | None) -> TensorData:
    """``data`` in float64 with every feature ``j`` multiplied by ``v[j]`` (``None``: no scaling)."""
    def f(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None:
            return None
        x = x.to(torch.float64)
        return x * v.to(x.device) if v is not None else x

    return TensorData(f(data.x_train), data.y_train, f(data.x_test), data.y_test, data.num_classes, data.name,  # type: ignore[arg-type]
                      f(data.x_val), data.y_val)


def rescale_first_layer(model: nn.Module, v: torch.Tensor) -> None:
    """Divide the input columns of the model's first ``nn.Linear`` by ``v``: ``W' x' = W x`` for ``x' = v x``."""
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    with torch.no_grad():
        first.weight.div_(v.to(first.weight))


def _run(make: Callable[[dict[str, Any], Workload], Opt], scaled: bool,
         cfg: dict[str, Any], w: Workload, data: TensorData, seed: int, epochs: int, device: str
         ) -> tuple[dict[str, float], dict[str, list[float]]]:
    model = w.model(data).to(device=device, dtype=torch.float64)  # the seed's initialisation (the job is seeded)
    v = scale_factors(data.x_train.shape[1], cfg["scale_decades"], cfg["scale_seed"]) if scaled else None
    if v is not None:
        rescale_first_layer(model, v)
    metrics, series = run(w, scaled_copy(data, v), make(cfg, w), seed, epochs=epochs, device=device, model=model)
    return metrics, series


def _method(make: Callable[[dict[str, Any], Workload], Opt], scaled: bool) -> Method:
    return Method(run=functools.partial(_run, make, scaled))


def _fixed(factory: Callable[[list[nn.Parameter]], torch.optim.Optimizer]) -> Callable[[dict[str, Any], Workload], Opt]:
    return lambda cfg, w: (lambda params, steps: (factory(params), None))


def _tuned_adam(cfg: dict[str, Any], w: Workload) -> Opt:
    lr = float(tuned_record()["baselines"][w.name]["adam"]["lr"])
    return lambda params, steps: (torch.optim.Adam(params, lr=lr), None)


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    makers: dict[str, Callable[[dict[str, Any], Workload], Opt]] = {
        "sania_adagrad_inv": _fixed(lambda p: SANIAAdaGradSQR(p, eps=1e-30)),
        "sania_adam_inv": _fixed(lambda p: SANIAAdamSQR(p, eps=1e-30)),
        "sania_adagrad": _fixed(lambda p: SANIAAdaGradSQR(p, eps=0.1)),
        "sania_adam": _fixed(lambda p: SANIAAdamSQR(p, eps=0.1)),
        "adam_default": _fixed(lambda p: torch.optim.Adam(p, lr=1e-3)),
        "adam_tuned": _tuned_adam,
    }
    out: dict[str, Method] = {}
    for name, make in makers.items():
        out[name] = _method(make, scaled=False)
        out[f"{name}_scaled"] = _method(make, scaled=True)
    for lr in cfg["adam_lrs"]:
        out[f"adam_scaled_lr{slug(float(lr))}"] = _method(_fixed(functools.partial(_adam, lr=float(lr))), scaled=True)
    return out


def _adam(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr)


def _derive_gaps(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    for wname in cfg["workloads"]:
        for arm in INVARIANCE_PAIRS:
            a, b = derived[arm], derived[f"{arm}_scaled"]
            la, lb = a[f"{wname}_train_loss"], b[f"{wname}_train_loss"]
            a[f"{wname}_loss_gap"] = [abs(y - x) / max(abs(x), 1e-300) for x, y in zip(la, lb)]
            a[f"{wname}_acc_gap"] = [abs(y - x) for x, y in zip(a[f"{wname}_test_acc"], b[f"{wname}_test_acc"])]
        grid = [(f"adam_scaled_lr{slug(float(lr))}", float(lr)) for lr in cfg["adam_lrs"]]
        arm, lr = lr_grid_best(table, [(f"{g}__{wname}", x) for g, x in grid], "val_acc", True)
        row = derived.setdefault("adam_grid_scaled", {})
        for k, vals in derived[arm.split("__")[0]].items():
            if k.startswith(f"{wname}_"):
                row[k] = list(vals)
        row[f"{wname}_lr"] = [lr] * len(table.seeds)


_PLOTTED = ("sania_adagrad_inv", "sania_adagrad_inv_scaled", "sania_adagrad", "sania_adagrad_scaled",
            "adam_tuned", "adam_tuned_scaled", "adam_default_scaled")


def _plot(cfg: dict[str, Any]) -> list[str]:
    """The per-epoch panels: the invariant SANIA, the authors' default floor and Adam, each with its scaled twin."""
    return list(_PLOTTED)


EXPERIMENT = optbench("sania_polyak_optimizer", _methods, extra_derive=_derive_gaps, plot_methods=_plot)
