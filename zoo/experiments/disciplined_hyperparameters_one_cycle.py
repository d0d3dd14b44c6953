"""Smith's 1cycle policy and LR range test (Smith, 2018) against constant and step schedules.

Smith's recipe: run the LR range test (:func:`zoo.optim.lr_range_test.lr_range_test`) to find
the largest learning rate that still trains, then train one cycle: the learning rate rises
linearly from a tenth of that maximum to the maximum over about half the run and falls back over
the other half while momentum cycles the opposite way (0.95 -> 0.85 -> 0.95), and the last
iterations anneal the learning rate far below the minimum. The report claims this trains in
fewer epochs to better accuracy than the usual constant or step-wise schedules.

Nothing here reimplements 1cycle: every schedule is torch's (``OneCycleLR`` with
``three_phase=True``, ``anneal_strategy="linear"``; ``MultiStepLR``), every optimizer torch's
SGD with momentum. Arms (each grid method: the spec's learning-rate grid, the point with the best
mean VALIDATION accuracy over seeds):

* ``constant``: SGD, momentum 0.9, constant lr; ``step``: the same with the lr divided by 10
  at 50% and at 75% of the steps; ``onecycle``: 1cycle with max lr from the grid;
* ``onecycle_rt``: the range test on the training split (SGD, momentum 0.9, the seed's
  initialisation and batch order) picks the max lr (:meth:`RangeTest.min_loss_lr`), then 1cycle
  from the same initialisation; ``onecycle_rt_half``: the same with half the epochs.

The range test's gradient evaluations are counted in the ``onecycle_rt`` arms' ``grad_evals``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any

import torch
from torch import nn

from zoo.experiment import Curve
from zoo.experiments._optbench import Method, optbench
from zoo.harness import Table
from zoo.optim.lr_range_test import RangeTest, lr_range_test
from zoo.training import TensorData
from zoo.training.seed import generator
from zoo.workloads.optim import Workload, run

__all__ = ["EXPERIMENT", "onecycle", "step_schedule", "range_test"]


def onecycle(params: list[nn.Parameter], steps: int, max_lr: float, cfg: dict[str, Any]) -> tuple[torch.optim.Optimizer, Any]:
    """SGD (momentum cycled by the schedule) with torch's ``OneCycleLR`` in Smith's form."""
    opt = torch.optim.SGD(params, lr=max_lr, momentum=float(cfg["max_momentum"]))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=max_lr, total_steps=steps, pct_start=float(cfg["pct_start"]), anneal_strategy="linear",
        three_phase=True, div_factor=float(cfg["div_factor"]), final_div_factor=float(cfg["final_div_factor"]),
        cycle_momentum=True, base_momentum=float(cfg["base_momentum"]), max_momentum=float(cfg["max_momentum"]))
    return opt, sched


def step_schedule(params: list[nn.Parameter], steps: int, lr: float, cfg: dict[str, Any]) -> tuple[torch.optim.Optimizer, Any]:
    """SGD, momentum 0.9, lr divided by 10 at each of ``cfg["step_milestones"]`` (fractions of the run)."""
    opt = torch.optim.SGD(params, lr=lr, momentum=float(cfg["momentum"]))
    miles = [max(1, round(f * steps)) for f in cfg["step_milestones"]]
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=miles, gamma=0.1)


def _ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(x), y)


def range_test(cfg: dict[str, Any], w: Workload, data: TensorData, seed: int, device: str) -> RangeTest:
    """The range test from the seed's initialisation and batch order; the global RNG is restored
    afterwards, so the training run that follows builds the same initial model as every other arm."""
    rng = torch.random.get_rng_state()
    try:
        model = w.model(data).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=float(cfg["rt_start_lr"]), momentum=float(cfg["momentum"]))
        gen = generator(seed)
        return lr_range_test(model, opt, lambda: data.batches(w.batch_size, gen), _ce,
                             start_lr=float(cfg["rt_start_lr"]), end_lr=float(cfg["rt_end_lr"]),
                             num_iter=int(cfg["rt_iters"]), mode="exp", smooth_f=float(cfg["rt_smooth"]))
    finally:
        torch.random.set_rng_state(rng)


def _rt_method(half: bool) -> Method:
    def fn(cfg: dict[str, Any], w: Workload, data: TensorData, seed: int, epochs: int, device: str):
        res = range_test(cfg, w, data, seed, device)
        max_lr = res.min_loss_lr()
        ep = max(1, epochs // 2) if half else epochs
        metrics, series = run(w, data, lambda ps, steps: onecycle(ps, steps, max_lr, cfg), seed, epochs=ep, device=device)
        metrics["grad_evals"] += float(len(res.lrs))
        metrics.update({"lr": max_lr, "rt_steepest_lr": res.steepest_lr() if len(res.lrs) > 16 else math.nan,
                        "rt_diverged": float(res.diverged), "rt_steps": float(len(res.lrs))})
        series["rt_lr"], series["rt_loss"] = list(res.lrs), [v if math.isfinite(v) else 1e30 for v in res.losses]
        return metrics, series
    return Method(run=fn)


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    grid = tuple(float(v) for v in cfg["lrs"])
    mom = float(cfg["momentum"])
    return {
        "constant": Method(build=lambda p, steps, lr, c, w: (torch.optim.SGD(p, lr=lr, momentum=mom), None), lrs=grid),
        "step": Method(build=lambda p, steps, lr, c, w: step_schedule(p, steps, float(lr), c), lrs=grid),
        "onecycle": Method(build=lambda p, steps, lr, c, w: onecycle(p, steps, float(lr), c), lrs=grid),
        "onecycle_rt": _rt_method(half=False),
        "onecycle_rt_half": _rt_method(half=True),
    }


def _extra_derive(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    for wname in cfg["workloads"]:
        key = f"{wname}_lr"
        for arm in ("onecycle_rt", "onecycle_rt_half"):
            if key in derived.get(arm, {}) and key in derived.get("onecycle", {}):
                derived[arm][f"{wname}_log_lr_ratio"] = [math.log10(a / b) for a, b in
                                                         zip(derived[arm][key], derived["onecycle"][key])]


def _plot_methods(cfg: dict[str, Any]) -> list[str]:
    return ["constant", "step", "onecycle", "onecycle_rt"]


_BASE = optbench("disciplined_hyperparameters_one_cycle", _methods, extra_derive=_extra_derive,
                 plot_methods=_plot_methods)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    out = _BASE.curves(cfg, table) if _BASE.curves else []
    for wname in cfg["workloads"]:
        arm = f"onecycle_rt__{wname}"
        if arm not in table.arms:
            continue
        n = int(cfg["rt_iters"])
        from zoo.optim.lr_range_test import range_lr

        xs = [range_lr(i, n, float(cfg["rt_start_lr"]), float(cfg["rt_end_lr"])) for i in range(n)]
        rows = table.series(arm, "rt_loss")
        series = {f"seed {s}": r + [math.nan] * (n - len(r)) for s, r in zip(table.seeds, rows)}
        chosen = statistics.fmean(math.log10(v) for v in table.metric(arm, "lr"))
        out.append(Curve(title=f"{wname}: LR range test (smoothed training loss; mean chosen max lr {10 ** chosen:.3g})",
                         x=xs, series=series, xlabel="learning rate", ylabel="smoothed training loss", logx=True,
                         logy=True))
    return out


EXPERIMENT = dataclasses.replace(_BASE, curves=_curves)
