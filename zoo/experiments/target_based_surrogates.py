"""SSO (Lavington et al., ICML 2023) at small scale: loss per *expensive* gradient against SGD.

Two workloads of the shared suite (:mod:`zoo.workloads.optim`): ``digits_logreg`` (the targets,
logits, are linear in the parameters: the convex case of the paper's analysis) and
``digits_mlp`` (non-convex), with their batch sizes, epochs, initialisations and batch orders.
An *expensive* gradient is one evaluation of ``∇_z L`` on a mini-batch: one closure call of the
shared loop (``grad_evals``), for every arm; SSO adds ``m - 1`` surrogate gradients per step
(back-propagations through the model only, counted in ``inner_steps``).

Arms (grids picked per workload by mean **validation** accuracy, ties to the smaller value):

* ``sso``: :class:`zoo.optim.sso.SSO` with ``m`` inner Armijo steps (config ``m``), the
  target-space step ``η`` from ``sso_etas``;
* ``sso_m1``: the same with one inner step (a line-searched SGD step; shows what the inner steps add);
* ``sgd``: plain SGD (the paper's baseline), constant lr from ``sgd_lrs``;
* ``sgdm_tuned``: SGD with momentum 0.9 at the family's tuned constant learning rate
  (``reproductions/_baselines/optim/tuned.json``).

:func:`_derive` adds ``<workload>_speedup`` to ``sso``: per seed, the number of expensive
gradients SGD used to reach its final training loss (its whole run) over the number SSO needed to
reach that loss (the first epoch whose mean training loss is at most SGD's last-epoch mean), or 0
when SSO never reaches it. (SSO's surrogate gradients are ``m`` per expensive gradient, the first
being the closure's own, unless an inner step finds a zero gradient.)
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

import torch
from torch import nn

from zoo.experiment import Curve
from zoo.experiments._optbench import Method, optbench, slug, tuned
from zoo.experiments._optim_tuning import build_baseline
from zoo.harness import Table
from zoo.optim.sso import SSO, sso_loss

__all__ = ["EXPERIMENT", "speedup"]


def _sso(m: int, etas: tuple[float, ...]) -> Method:
    """An SSO method whose loss hands the job's optimizer its targets (one holder per job: methods are rebuilt per job)."""
    holder: dict[str, SSO] = {}

    def build(params: list[nn.Parameter], steps: int, lr: float | None, cfg: dict[str, Any], w: Any) -> tuple[SSO, None]:
        holder["opt"] = SSO(params, eta=float(lr), m=m)  # type: ignore[arg-type]
        return holder["opt"], None

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sso_loss(holder["opt"], torch.nn.functional.cross_entropy)(model, x, y)

    return Method(build=build, loss=loss, lrs=etas)


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    etas = tuple(float(v) for v in cfg["sso_etas"])
    return {
        "sso": _sso(int(cfg["m"]), etas),
        "sso_m1": _sso(1, etas),
        "sgd": Method(build=lambda p, steps, lr, cfg, w: (torch.optim.SGD(p, lr=lr), None),
                      lrs=tuple(float(v) for v in cfg["sgd_lrs"])),
        "sgdm_tuned": tuned("sgdm", lambda p, steps, lr, cfg, w: build_baseline("sgdm", p, steps, lr)),
    }


def speedup(sgd_losses: list[float], sso_losses: list[float]) -> float:
    """Epochs SGD ran over the first epoch at which SSO's epoch-mean loss is <= SGD's final one (0: never)."""
    target = sgd_losses[-1]
    for e, v in enumerate(sso_losses, start=1):
        if v <= target:
            return len(sgd_losses) / e
    return 0.0


def _derive(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    for w in cfg["workloads"]:
        sso_arm = f"sso__{w}__lr{slug(derived['sso'][f'{w}_lr'][0])}"
        sgd_arm = f"sgd__{w}__lr{slug(derived['sgd'][f'{w}_lr'][0])}"
        a, b = table.series(sgd_arm, "train_loss"), table.series(sso_arm, "train_loss")
        derived["sso"][f"{w}_speedup"] = [speedup(x, y) for x, y in zip(a, b)]


def _picked(table: Table, method: str, w: str, lr: float | None) -> str:
    return f"{method}__{w}" if lr is None else f"{method}__{w}__lr{slug(lr)}"


def _loss_curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    """Training loss against expensive gradients (the claims' axis), one panel per workload, log scale."""
    derived = _BENCH.derive(cfg, table)  # type: ignore[misc]
    out = []
    for w in cfg["workloads"]:
        series: dict[str, list[float]] = {}
        x: list[float] = []
        for m in ("sso", "sso_m1", "sgd", "sgdm_tuned"):
            lr = None if m == "sgdm_tuned" else derived[m][f"{w}_lr"][0]
            arm = _picked(table, m, w, lr)
            per_seed = table.series(arm, "train_loss")
            mean = [statistics.fmean(v) for v in zip(*per_seed)]
            per_epoch = table.metric(arm, "grad_evals")[0] / len(mean)
            x = [per_epoch * (e + 1) for e in range(len(mean))]
            series[m if lr is None else f"{m} ({'eta' if m.startswith('sso') else 'lr'} {lr:g}, by validation)"] = mean
        out.append(Curve(title=f"{w}: training loss vs expensive gradients (mean, {len(table.seeds)} seeds)", x=x,
                         series=series, xlabel="expensive gradients (mini-batch dL/dz evaluations)",
                         ylabel="training loss (epoch mean)", logy=True))
    return out


_BENCH = optbench("target_based_surrogates", _methods, extra_derive=_derive)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    return _loss_curves(cfg, table) + (_BENCH.curves(cfg, table) if _BENCH.curves else [])


EXPERIMENT = dataclasses.replace(_BENCH, curves=_curves)
