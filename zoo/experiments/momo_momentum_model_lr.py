"""MoMo (Schaipp et al., ICML 2024) at small scale: learning-rate sensitivity over one shared grid.

Four methods run every point of a learning-rate grid on each workload of the config
(:mod:`zoo.workloads.optim`: same data, initialisation, batch order and epochs for every arm and
seed), all at a **constant** learning rate (no schedule), so that what is measured is how the
optimizer itself reacts to its learning rate:

* ``momo``: :class:`zoo.optim.momo.MoMo` (``beta`` 0.9, lower bound ``f_* = 0``: the
  cross-entropy is non-negative; no bias correction, no weight decay: the package defaults);
* ``sgdm_grid``: SGD with momentum in the averaged form MoMo is built on,
  ``d_k = beta d_{k-1} + (1 - beta) g_k``, ``x_{k+1} = x_k - alpha d_k`` (torch's SGD with
  ``momentum=0.9, dampening=0.9``). MoMo with a step cap that is never active is exactly this
  method, so the two share the grid point for point;
* ``momo_adam``: :class:`zoo.optim.momo.MoMoAdam` (betas (0.9, 0.999), ``f_* = 0``);
* ``adam_grid``: ``torch.optim.Adam`` (betas (0.9, 0.999)): MoMo-Adam with an inactive cap.

Each method is a grid :class:`~zoo.experiments._optbench.Method`; its derived arm reports the grid
point with the best mean **validation** accuracy (and that point's ``<workload>_lr``).
:func:`lr_band` adds the sensitivity measure, per seed: ``<workload>_lr_band``, the width in
decades, ``log10(lr_max / lr_min)``, of the contiguous run of grid points around that seed's best
grid point whose final test accuracy is within ``band_points`` (1) of the best (0 when only the
best point qualifies). The per-seed widths are paired by seed across methods.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from zoo.experiment import Curve
from zoo.experiments._optbench import Method, optbench, slug
from zoo.harness import Table
from zoo.optim.momo import MoMo, MoMoAdam
from zoo.workloads.optim import get_workload

__all__ = ["EXPERIMENT", "PAIRS", "band_width", "lr_band"]

# (MoMo variant, its base method): the pairs the sensitivity claims compare, each on one grid.
PAIRS = (("momo", "sgdm_grid"), ("momo_adam", "adam_grid"))


def _grid(cfg: dict[str, Any], key: str) -> tuple[float, ...]:
    return tuple(float(v) for v in cfg[key])


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    sgd_lrs, adam_lrs = _grid(cfg, "sgd_lrs"), _grid(cfg, "adam_lrs")
    beta = float(cfg.get("beta", 0.9))
    return {
        "momo": Method(build=lambda p, steps, lr, c, w: (MoMo(p, lr=lr, beta=beta, lb=0.0), None), lrs=sgd_lrs),
        "sgdm_grid": Method(build=lambda p, steps, lr, c, w: (
            torch.optim.SGD(p, lr=lr, momentum=beta, dampening=beta), None), lrs=sgd_lrs),
        "momo_adam": Method(build=lambda p, steps, lr, c, w: (MoMoAdam(p, lr=lr, betas=(beta, 0.999), lb=0.0), None),
                            lrs=adam_lrs),
        "adam_grid": Method(build=lambda p, steps, lr, c, w: (torch.optim.Adam(p, lr=lr, betas=(beta, 0.999)), None),
                            lrs=adam_lrs),
    }


def band_width(lrs: list[float], accs: list[float], points: float) -> float:
    """Decades spanned by the contiguous grid points around the best whose accuracy is within ``points`` of it.

    ``lrs`` ascending; ``accs`` the accuracy at each. A non-finite accuracy never qualifies.
    """
    finite = [a if math.isfinite(a) else -math.inf for a in accs]
    best = max(range(len(finite)), key=lambda i: (finite[i], -i))  # ties: the smaller lr
    lo = hi = best
    while lo > 0 and finite[lo - 1] >= finite[best] - points:
        lo -= 1
    while hi < len(finite) - 1 and finite[hi + 1] >= finite[best] - points:
        hi += 1
    return math.log10(lrs[hi] / lrs[lo])


def lr_band(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    """Adds ``<workload>_lr_band`` (per seed, decades) to every grid method's derived arm."""
    points = float(cfg.get("band_points", 1.0))
    for m, meth in _methods(cfg).items():
        assert meth.lrs is not None
        lrs = sorted(meth.lrs)
        for w in cfg["workloads"]:
            per_lr = [table.metric(f"{m}__{w}__lr{slug(lr)}", "test_acc") for lr in lrs]
            derived[m][f"{w}_lr_band"] = [band_width(lrs, [col[i] for col in per_lr], points)
                                          for i in range(len(table.seeds))]


EXPERIMENT = optbench("momo_momentum_model_lr", _methods, extra_derive=lr_band)
_grid_curves = EXPERIMENT.curves


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    """The shared per-epoch panels, then one accuracy-vs-lr panel per (pair, workload)."""
    out = [c for c in (_grid_curves(cfg, table) if _grid_curves else []) if "vs learning rate" not in c.title]
    ms = _methods(cfg)
    for w in cfg["workloads"]:
        desc = get_workload(w).description
        for pair in PAIRS:
            lrs = sorted(ms[pair[0]].lrs or ())
            series = {m: [statistics.fmean(table.metric(f"{m}__{w}__lr{slug(lr)}", "test_acc")) for lr in lrs]
                      for m in pair}
            out.append(Curve(title=f"{desc}: final test accuracy vs constant learning rate, {pair[0]} vs {pair[1]} "
                                   f"(mean, {len(table.seeds)} seeds)",
                             x=list(lrs), series=series, style={m: "o-" for m in pair}, xlabel="learning rate",
                             ylabel="test accuracy (%)", logx=True))
    return out


EXPERIMENT.curves = _curves
