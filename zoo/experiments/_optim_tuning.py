"""The optimizer family's tuned baselines: each tuned once, per workload, on the validation split.

Every optimizer entry that compares with Adam, AdamW or SGD with momentum runs the baseline at
the learning rate chosen here (:func:`zoo.experiments._optbench.tuned`), so no entry re-tunes it
and every entry gives it the same tuning effort. ``python -m zoo.baselines optim --record``
writes ``reproductions/_baselines/optim/tuned.json``; its DVC stage (``baselines_optim``) depends
on this file, the workload suite and the training loop, and the entries that use a tuned
baseline depend on ``tuned.json``: a new tuning makes exactly those entries stale.

Baselines (every one: the workload's batch size and epochs, batches and initialisations of the
tuning seeds, one scheduler step per optimizer step):

===================  ====================================================================
``adam``             ``torch.optim.Adam``, betas (0.9, 0.999), constant learning rate
``adam_cosine``      the same with cosine annealing to 0 over the run
``adamw_cosine``     ``torch.optim.AdamW``, weight decay 0.01 (torch's default), cosine
``sgdm``             ``torch.optim.SGD``, momentum 0.9, constant learning rate
``sgdm_cosine``      the same with cosine annealing to 0 over the run
===================  ====================================================================

Selection: the grid point with the best mean validation metric over :data:`TUNING_SEEDS`
(accuracy; the validation MSE for the regression workload), ties to the smaller learning rate.
The tuning seeds are not the entries' evaluation seeds (0-9), so a baseline's evaluation is not
the run it was picked on. A choice at the edge of its grid is flagged in the record.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.experiments._optbench import Method, job_arms, lr_grid_best, optbench, slug
from zoo.harness import Table
from zoo.workloads.optim import WORKLOADS, Workload, get_workload

__all__ = ["EXPERIMENT", "BASELINES", "TUNING_SEEDS", "CONFIG", "QUICK", "GRIDS", "build_baseline", "select"]

TUNING_SEEDS = [100, 101, 102]
ADAM_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
SGD_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0)
# The CNN costs ten times the others per run: a four-point grid around its optimum (a first tuning
# with 3e-4..1e-2 for Adam chose the upper edge).
CNN_ADAM_GRID = (1e-3, 3e-3, 1e-2, 3e-2)
CNN_SGD_GRID = (1e-2, 3e-2, 1e-1, 3e-1)

BASELINES = ("adam", "adam_cosine", "adamw_cosine", "sgdm", "sgdm_cosine")
GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    w: {b: ((CNN_ADAM_GRID if b.startswith("adam") else CNN_SGD_GRID) if w == "mnist5k_cnn"
            else (ADAM_GRID if b.startswith("adam") else SGD_GRID)) for b in BASELINES}
    for w in WORKLOADS
}

CONFIG: dict[str, Any] = {"workloads": list(WORKLOADS), "n_train": None, "n_test": None, "epochs": {}}
QUICK: dict[str, Any] = {"workloads": ["digits_logreg", "lstsq"], "n_train": 300, "n_test": 100,
                         "epochs": {"digits_logreg": 2, "lstsq": 2}}


def build_baseline(baseline: str, params: list[nn.Parameter], steps: int, lr: float) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer and scheduler of ``baseline`` at learning rate ``lr`` for a run of ``steps``."""
    if baseline.startswith("adamw"):
        opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    elif baseline.startswith("adam"):
        opt = torch.optim.Adam(params, lr=lr)
    elif baseline.startswith("sgdm"):
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    else:
        raise KeyError(f"unknown baseline {baseline!r}; known: {', '.join(BASELINES)}")
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if baseline.endswith("_cosine") else None
    return opt, sched


def _builder(baseline: str) -> Any:
    return lambda params, steps, lr, cfg, w: build_baseline(baseline, params, steps, float(lr))


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    # One method per (baseline, grid): the CNN's grid differs, so it is its own method.
    out: dict[str, Method] = {}
    for b in BASELINES:
        for w in cfg["workloads"]:
            grid = GRIDS[w][b]
            name = b if grid == GRIDS["digits_logreg"][b] else f"{b}_cnn_grid"
            if name in out:
                out[name] = Method(build=out[name].build, lrs=grid, workloads=(*(out[name].workloads or ()), w))
            else:
                out[name] = Method(build=_builder(b), lrs=grid, workloads=(w,))
    return out


EXPERIMENT = optbench("optim_tuning", _methods)


def select(cfg: dict[str, Any], table: Table) -> dict[str, dict[str, dict[str, Any]]]:
    """``{workload: {baseline: {lr, val (mean), grid: {lr: mean val}, at_edge}}}`` from the tuning jobs."""
    import statistics

    methods = _methods(cfg)
    jobs = job_arms(methods, cfg)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for wname in cfg["workloads"]:
        w: Workload = get_workload(wname)
        metric, higher = w.objective
        for b in BASELINES:
            grid = GRIDS[wname][b]
            m = b if grid == GRIDS["digits_logreg"][b] else f"{b}_cnn_grid"
            arms = [(f"{m}__{wname}__lr{slug(lr)}", lr) for lr in grid]
            assert all(a in jobs for a, _ in arms)
            arm, lr = lr_grid_best(table, arms, metric, higher)
            means = {f"{g:g}": statistics.fmean(table.metric(a, metric)) for a, g in arms}
            out.setdefault(wname, {})[b] = {
                "lr": lr, "metric": metric, "value": means[f"{lr:g}"], "grid": means,
                "at_edge": lr in (grid[0], grid[-1]),
            }
    return out
