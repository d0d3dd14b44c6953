"""SAM vs SGD at equal epochs and at equal gradient evaluations, clean and with symmetric label noise.

Arms (every one SGD with momentum 0.9 and the shared cosine schedule, at the family's tuned
``sgdm_cosine`` learning rate unless it is a grid arm; the shared workloads' data, initialisation
and batch order per seed; see ``specs/sharpness_aware_minimization.yaml`` for the precise list):

* ``sgd``: the tuned baseline, the workload's epochs;
* ``sgd_2x``: the same at twice the epochs (cosine over the longer run): as many gradient
  evaluations as SAM, which takes two per step;
* ``sam``: :class:`zoo.optim.sam.SAM` around the same SGD at the paper's default ``rho = 0.05``;
* ``sam_tuned`` (grid workloads): ``rho`` from ``cfg["rhos"]`` (``sam`` is its 0.05 point) picked
  by mean validation accuracy (the paper tunes ``rho`` on a held-out split);
* ``*_noisy`` (noisy workloads): labels corrupted by ``cfg["noise"]`` symmetric noise (training and
  validation; test clean). ``sgd_noisy`` and ``sgd_2x_noisy`` pick their learning rate from
  ``cfg["noisy_lrs"]`` and ``sam_noisy`` its ``rho`` from ``cfg["rhos"]`` (at the clean tuned
  lr), each by mean *noisy* validation accuracy: the same number of configurations per arm;
  ``sam_noisy_lr_tuned`` is SAM at rho 0.05 with its learning rate picked from the same
  ``cfg["noisy_lrs"]`` by noisy validation, the same tuning as ``sgd_noisy`` (added after the
  first record: ``sgd_noisy`` picked lr 0.01 while ``sam_noisy`` stays at the clean lr 0.3).

Each job also reports ``lam_max`` / ``log10_lam_max`` (top Hessian eigenvalue at the final weights)
and ``step_ms`` (see :mod:`zoo.experiments._sharpness`).
"""

from __future__ import annotations

from typing import Any

import torch

from zoo.experiments._optbench import Method, lr_grid_best, optbench, slug
from zoo.experiments._sharpness import arm, tuned_lr
from zoo.harness import Table
from zoo.optim.sam import SAM
from zoo.workloads.optim import get_workload

__all__ = ["EXPERIMENT", "sgd", "sam"]


def sgd(lr: float | None = None):  # type: ignore[no-untyped-def]
    """SGD(momentum 0.9) at ``lr`` (None: the tuned ``sgdm_cosine`` lr); the arm adds the cosine."""

    def build(params, cfg, w):  # type: ignore[no-untyped-def]
        return torch.optim.SGD(params, lr=tuned_lr(w.name) if lr is None else lr, momentum=0.9)

    return build


def sam(rho: float, lr: float | None = None):  # type: ignore[no-untyped-def]
    """SAM(rho) around SGD(momentum 0.9) at ``lr`` (None: the tuned ``sgdm_cosine`` lr); the arm adds the cosine."""

    def build(params, cfg, w):  # type: ignore[no-untyped-def]
        return SAM(params, torch.optim.SGD, rho=rho, lr=tuned_lr(w.name) if lr is None else lr, momentum=0.9)

    return build


def _grid(cfg: dict[str, Any]) -> dict[str, dict[str, tuple[str, ...]]]:
    """Derived grid arm -> {workload: candidate methods} (selected by validation in :func:`_derive`)."""
    rhos = [float(r) for r in cfg["rhos"]]
    out: dict[str, dict[str, tuple[str, ...]]] = {"sam_tuned": {}, "sgd_noisy": {}, "sgd_2x_noisy": {}, "sam_noisy": {},
                                                  "sam_noisy_lr_tuned": {}}
    for w in cfg.get("grid_workloads", []):
        out["sam_tuned"][w] = tuple("sam" if r == 0.05 else f"sam_rho{slug(r)}" for r in rhos)
    for w in cfg.get("noisy_workloads", []):
        out["sgd_noisy"][w] = tuple(f"sgd_noisy_lr{slug(float(x))}" for x in cfg["noisy_lrs"])
        out["sgd_2x_noisy"][w] = tuple(f"sgd_2x_noisy_lr{slug(float(x))}" for x in cfg["noisy_lrs"])
        out["sam_noisy"][w] = tuple(f"sam_noisy_rho{slug(r)}" for r in rhos)
        out["sam_noisy_lr_tuned"][w] = tuple(f"sam_noisy_rho0_05_lr{slug(float(x))}" for x in cfg["noisy_lrs"])
    return out


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    grid_w = tuple(cfg.get("grid_workloads", []))
    noisy_w = tuple(cfg.get("noisy_workloads", []))
    m: dict[str, Method] = {
        "sgd": Method(run=arm(sgd())),
        "sgd_2x": Method(run=arm(sgd(), epochs_factor=2)),
        "sam": Method(run=arm(sam(0.05))),
    }
    for r in (float(x) for x in cfg["rhos"]):
        if r != 0.05 and grid_w:
            m[f"sam_rho{slug(r)}"] = Method(run=arm(sam(r)), workloads=grid_w)
    if noisy_w:
        for x in (float(v) for v in cfg["noisy_lrs"]):
            m[f"sgd_noisy_lr{slug(x)}"] = Method(run=arm(sgd(x), noise=True), workloads=noisy_w)
            m[f"sgd_2x_noisy_lr{slug(x)}"] = Method(run=arm(sgd(x), noise=True, epochs_factor=2), workloads=noisy_w)
        for r in (float(x) for x in cfg["rhos"]):
            m[f"sam_noisy_rho{slug(r)}"] = Method(run=arm(sam(r), noise=True), workloads=noisy_w)
        for x in (float(v) for v in cfg["noisy_lrs"]):
            m[f"sam_noisy_rho0_05_lr{slug(x)}"] = Method(run=arm(sam(0.05, x), noise=True), workloads=noisy_w)
    return m


def _derive(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    """Each grid arm: per workload, the candidate with the best mean validation accuracy (ties: the first).

    Reports that candidate's metrics and its ``<workload>_rho`` / ``<workload>_lr``; the candidates'
    own rows (internal grid points) are dropped, except ``sam`` (rho 0.05), an arm of its own.
    """
    grid = _grid(cfg)
    rhos = {("sam" if float(r) == 0.05 else f"sam_rho{slug(float(r))}"): float(r) for r in cfg["rhos"]}
    for name, per_w in grid.items():
        row: dict[str, list[float]] = {}
        for w, cands in per_w.items():
            metric, higher = get_workload(w).objective
            pick, _ = lr_grid_best(table, [(f"{c}__{w}", float(i)) for i, c in enumerate(cands)], metric, higher)
            c = pick.split("__")[0]
            for k, v in table.metrics_of(pick).items():
                row[f"{w}_{k}"] = v
            n = len(table.seeds)
            if name.startswith("sgd") or name == "sam_noisy_lr_tuned":
                row[f"{w}_lr"] = [float(c.rsplit("_lr", 1)[1].replace("_", "."))] * n
            else:
                row[f"{w}_rho"] = [rhos[c] if c in rhos else float(c.rsplit("_rho", 1)[1].replace("_", "."))] * n
        if row:
            derived[name] = row
    candidates = {c for per_w in grid.values() for cands in per_w.values() for c in cands} - {"sam"}
    for m in list(derived):
        if m in candidates:
            del derived[m]


def _plot(cfg: dict[str, Any]) -> list[str]:
    return ["sgd", "sam"]  # sgd_2x runs twice the epochs: its own x axis


EXPERIMENT = optbench("sharpness_aware_minimization", _methods, extra_derive=_derive, plot_methods=_plot)
