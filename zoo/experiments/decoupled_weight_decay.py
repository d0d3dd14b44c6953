"""Decoupled weight decay (Loshchilov & Hutter, ICLR 2019): learning rate x decay grids.

Adam with an L2 term adds ``lambda theta`` to the gradient, which Adam's preconditioner then
rescales; AdamW (Algorithm 2) shrinks the weights directly, ``theta <- theta - eta_t (alpha
m_hat / (sqrt(v_hat) + eps) + lambda theta)``, with the schedule multiplier ``eta_t`` but without
the learning rate ``alpha`` on the decay. The same for SGD with momentum (Algorithm 1, SGDW). The
paper's Fig. 2 (ResNet on CIFAR-10, cosine annealing) shows that the good region of (alpha,
lambda) is diagonal for the L2 versions and axis-aligned for the decoupled ones: the best decay
no longer depends on the learning rate; and AdamW generalises better than Adam with L2.

torch's ``AdamW`` multiplies the decay by the *current* lr (``theta <- theta (1 - lr wd)``), which
couples it to ``alpha`` again; the paper's ``lambda`` is ``weight_decay = lambda / alpha`` (then
``lr wd = eta_t lambda``). Every decoupled arm here is parameterised that way, with torch's AdamW
and the zoo's :class:`zoo.optim.sgdw.SGDW` (torch has no decoupled SGD). The L2 arms are
``torch.optim.Adam`` / ``torch.optim.SGD`` with ``weight_decay = lambda`` (an L2 gradient term).
Every run: cosine annealing to 0 over the run (one scheduler step per optimizer step), SGD
momentum 0.9, Adam betas (0.9, 0.999).

For each family (``adam_l2``, ``adamw``, ``sgd_l2``, ``sgdw``) one method per ``lambda`` of
``cfg["wds"]`` runs the family's lr grid; :func:`_extra_derive` replaces those per-lambda rows by
one derived arm per family: the (lr, lambda) cell with the best mean VALIDATION accuracy, its
``lr`` and ``wd``, and, per seed,

* ``wd_best_drift``: for each lr, the grid index of the lambda with the best validation accuracy
  (ties: the smaller lambda); the drift is max - min of that index over the lr grid (grid steps);
* ``wd_edge_drift``: the same for the largest lambda whose validation accuracy is within
  ``cfg["wd_tol"]`` points of that lr's best (the edge of the tolerated-decay region).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any

import torch
from torch import nn

from zoo.experiment import Curve
from zoo.experiments._optbench import Method, optbench, slug
from zoo.harness import Table, mean_band
from zoo.optim.sgdw import SGDW
from zoo.workloads.optim import Workload, get_workload

__all__ = ["EXPERIMENT", "FAMILIES", "build", "method_name", "best_cell", "drifts"]

FAMILIES = ("adam_l2", "adamw", "sgd_l2", "sgdw")


def build(family: str, params: list[nn.Parameter], steps: int, lr: float, lam: float,
          momentum: float = 0.9) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer of ``family`` at learning rate ``lr`` and the paper's decay ``lam``, with cosine annealing."""
    if family == "adam_l2":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, weight_decay=lam)
    elif family == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=lam / lr)  # lr * wd = eta_t * lambda
    elif family == "sgd_l2":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=lam)
    elif family == "sgdw":
        opt = SGDW(params, lr=lr, momentum=momentum, weight_decay=lam / lr)
    else:
        raise KeyError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)


def method_name(family: str, lam: float) -> str:
    return f"{family}_wd{slug(lam)}"


def _lrs(cfg: dict[str, Any], family: str) -> tuple[float, ...]:
    return tuple(float(v) for v in cfg["adam_lrs" if family.startswith("adam") else "sgd_lrs"])


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    out: dict[str, Method] = {}
    for fam in FAMILIES:
        for lam in cfg["wds"]:
            lam = float(lam)
            out[method_name(fam, lam)] = Method(
                build=lambda p, steps, lr, c, w, fam=fam, lam=lam: build(fam, p, steps, float(lr), lam, float(c["momentum"])),
                lrs=_lrs(cfg, fam))
    return out


def _arm(fam: str, lam: float, wname: str, lr: float) -> str:
    return f"{method_name(fam, lam)}__{wname}__lr{slug(lr)}"


def best_cell(table: Table, cfg: dict[str, Any], fam: str, wname: str) -> tuple[float, float]:
    """The (lr, lambda) with the best mean validation accuracy (9 significant digits; ties: smaller lr, then lambda)."""
    cells = [(lr, float(lam)) for lr in _lrs(cfg, fam) for lam in cfg["wds"]]

    def key(c: tuple[float, float]) -> tuple[float, float, float]:
        m = statistics.fmean(table.metric(_arm(fam, c[1], wname, c[0]), "val_acc"))
        return (-float(f"{m:.9g}") if math.isfinite(m) else math.inf, c[0], c[1])

    return min(cells, key=key)


def drifts(rows: list[list[float]], tol: float) -> tuple[int, int]:
    """``(best drift, edge drift)`` in grid steps for one seed: ``rows[i][j]`` is the validation
    accuracy at lr ``i`` and lambda ``j`` (lambdas in increasing order)."""
    best_idx, edge_idx = [], []
    for r in rows:
        top = max(r)
        best_idx.append(min(j for j, v in enumerate(r) if v == top))
        edge_idx.append(max(j for j, v in enumerate(r) if v >= top - tol))
    return max(best_idx) - min(best_idx), max(edge_idx) - min(edge_idx)


def _extra_derive(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    for m in list(derived):
        if any(m.startswith(f"{fam}_wd") for fam in FAMILIES):
            del derived[m]  # the per-lambda rows: summarised by the family arms below
    wds = [float(v) for v in cfg["wds"]]
    tol = float(cfg["wd_tol"])
    n = len(table.seeds)
    for fam in FAMILIES:
        row = derived.setdefault(fam, {})
        for wname in cfg["workloads"]:
            lr, lam = best_cell(table, cfg, fam, wname)
            for k, v in table.metrics_of(_arm(fam, lam, wname, lr)).items():
                row[f"{wname}_{k}"] = list(v)
            row[f"{wname}_lr"], row[f"{wname}_wd"] = [lr] * n, [lam] * n
            grid = {(l_, w_): table.metric(_arm(fam, w_, wname, l_), "val_acc") for l_ in _lrs(cfg, fam) for w_ in wds}
            best, edge = [], []
            for i in range(n):
                b, e = drifts([[grid[(l_, w_)][i] for w_ in wds] for l_ in _lrs(cfg, fam)], tol)
                best.append(float(b))
                edge.append(float(e))
            row[f"{wname}_wd_best_drift"], row[f"{wname}_wd_edge_drift"] = best, edge


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    out: list[Curve] = []
    wds = [float(v) for v in cfg["wds"]]
    for wname in cfg["workloads"]:
        w: Workload = get_workload(wname)
        series, bands = {}, {}
        for fam in FAMILIES:
            lr, lam = best_cell(table, cfg, fam, wname)
            label = f"{fam} (lr {lr:g}, lambda {lam:g}, by validation)"
            series[label], bands[label] = mean_band(table.series(_arm(fam, lam, wname, lr), "test_acc"))
        n = len(next(iter(series.values())))
        out.append(Curve(title=f"{w.description}: test accuracy per epoch at each family's best cell "
                               f"(mean, min-max, {len(table.seeds)} seeds)",
                         x=[float(e) for e in range(1, n + 1)], series=series, bands=bands, xlabel="epoch",
                         ylabel="test accuracy (%)"))
        for fam in FAMILIES:
            lines = {f"lr {lr:g}": [statistics.fmean(table.metric(_arm(fam, lam, wname, lr), "val_acc")) for lam in wds]
                     for lr in _lrs(cfg, fam)}
            out.append(Curve(title=f"{wname} {fam}: validation accuracy vs lambda, one line per lr (mean)",
                             x=wds, series=lines, style={k: "o-" for k in lines}, xlabel="lambda (paper's decay)",
                             ylabel="validation accuracy (%)", logx=True))
    return out


EXPERIMENT = dataclasses.replace(optbench("decoupled_weight_decay", _methods, extra_derive=_extra_derive), curves=_curves)
