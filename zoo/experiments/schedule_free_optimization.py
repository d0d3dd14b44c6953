"""Schedule-Free SGD and AdamW (Defazio et al., NeurIPS 2024) against tuned cosine schedules.

Every arm trains the same workloads (:mod:`zoo.workloads.optim`: same data, initialisation, batch
order and epochs ``T`` per arm and seed) and is evaluated after every epoch; Schedule-Free arms
are evaluated at their averaged point ``x`` (the shared loop calls ``optimizer.eval()``).

* ``sf_adamw``: :class:`zoo.optim.schedule_free.ScheduleFreeAdamW` (betas (0.9, 0.999), weight
  decay 0.01 as the AdamW baseline's, linear warmup over the first ``warmup_fraction`` (5%) of
  the steps, no schedule after it), on the AdamW baseline's own learning-rate tuning grid
  (``sf_adamw_lrs``, :data:`zoo.experiments._optim_tuning.ADAM_GRID`) picked by mean
  **validation** accuracy;
* ``sf_sgd``: :class:`zoo.optim.schedule_free.ScheduleFreeSGD` (momentum 0.9, the same warmup, no
  weight decay as the SGD baseline), on the SGD baseline's grid (``sf_sgd_lrs``,
  :data:`~zoo.experiments._optim_tuning.SGD_GRID`) picked the same way.
* ``sf_sgd_hi`` and ``sf_sgd_wide`` (added after the first record, whose ``sf_sgd`` chose the top
  of its grid on both workloads): ``sf_sgd`` at the two learning rates above that grid
  (``sf_sgd_hi_lrs``: 30, 100), and the validation-best point of the union of both grids
  (:func:`widen`), with its anytime metrics.
* ``adamw_cosine`` / ``sgdm_cosine``: the family's tuned baselines (``tuned.json``): AdamW (weight
  decay 0.01) / SGD with momentum 0.9, cosine annealing to 0 over the ``T`` epochs of the run,
  at the learning rate tuned on validation for that horizon.
* ``adamw_cosine_half`` / ``sgdm_cosine_half``: the same baselines run for ``T // 2`` epochs
  with the cosine annealed to 0 at ``T // 2`` (the schedule for the shorter horizon), at the
  learning rate tuned for ``T``.

:func:`anytime` adds the anytime metrics: ``<workload>_test_acc_quarter`` / ``_half``, the
test accuracy after epoch ``ceil(T / 4)`` / ``T // 2`` of the full-length runs (Schedule-Free's
validation-selected grid point, the cosine baselines' tuned run), read from the per-epoch series.
"""

from __future__ import annotations

import math
from typing import Any

from zoo.experiments._optbench import Method, lr_grid_best, optbench, slug, tuned, tuned_record
from zoo.experiments._optim_tuning import build_baseline
from zoo.harness import Table
from zoo.optim.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD
from zoo.training import TensorData
from zoo.workloads.optim import Workload, get_workload, run

__all__ = ["EXPERIMENT", "anytime", "checkpoints", "half_horizon", "widen"]

FULL_LENGTH = ("sf_adamw", "sf_sgd", "adamw_cosine", "sgdm_cosine")


def _warmup(cfg: dict[str, Any], steps: int) -> int:
    return int(round(float(cfg["warmup_fraction"]) * steps))


def half_horizon(baseline: str) -> Any:
    """A run function: ``baseline`` (cosine to 0) for ``epochs // 2`` epochs at the lr tuned for ``epochs``."""

    def run_half(cfg: dict[str, Any], w: Workload, data: TensorData, seed: int, epochs: int,
                 device: str) -> tuple[dict[str, float], dict[str, list[float]]]:
        lr = float(tuned_record()["baselines"][w.name][baseline]["lr"])
        metrics, series = run(w, data, lambda ps, steps: build_baseline(baseline, ps, steps, lr), seed,
                              epochs=epochs // 2, device=device)
        return {**metrics, "lr": lr}, series

    return run_half


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    wd = float(cfg["adamw_weight_decay"])

    def sf_sgd(p: Any, steps: int, lr: float, c: dict[str, Any], w: Workload) -> Any:
        return ScheduleFreeSGD(p, lr=lr, momentum=0.9, warmup_steps=_warmup(c, steps)), None

    return {
        "sf_adamw": Method(build=lambda p, steps, lr, c, w: (
            ScheduleFreeAdamW(p, lr=lr, betas=(0.9, 0.999), weight_decay=wd, warmup_steps=_warmup(c, steps)), None),
            lrs=tuple(float(v) for v in cfg["sf_adamw_lrs"])),
        "sf_sgd": Method(build=sf_sgd, lrs=tuple(float(v) for v in cfg["sf_sgd_lrs"])),
        "sf_sgd_hi": Method(build=sf_sgd, lrs=tuple(float(v) for v in cfg["sf_sgd_hi_lrs"])),
        "adamw_cosine": tuned("adamw_cosine", lambda p, steps, lr, c, w: build_baseline("adamw_cosine", p, steps, lr)),
        "sgdm_cosine": tuned("sgdm_cosine", lambda p, steps, lr, c, w: build_baseline("sgdm_cosine", p, steps, lr)),
        "adamw_cosine_half": Method(run=half_horizon("adamw_cosine")),
        "sgdm_cosine_half": Method(run=half_horizon("sgdm_cosine")),
    }


def checkpoints(epochs: int) -> dict[str, int]:
    """The anytime checkpoints of a ``epochs``-epoch run: epoch numbers (1-based)."""
    return {"quarter": math.ceil(epochs / 4), "half": epochs // 2}


def _epochs(cfg: dict[str, Any], w: str) -> int:
    over = cfg.get("epochs") or {}
    return int(over.get(w, get_workload(w).epochs))


def _anytime_of(cfg: dict[str, Any], table: Table, arm: str, w: str) -> dict[str, list[float]]:
    rows = table.series(arm, "test_acc")
    return {f"{w}_test_acc_{name}": [row[epoch - 1] for row in rows]
            for name, epoch in checkpoints(_epochs(cfg, w)).items()}


def widen(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    """``sf_sgd_wide``: the validation-best point of ``sf_sgd``'s and ``sf_sgd_hi``'s grids together."""
    ms = _methods(cfg)
    row: dict[str, list[float]] = {}
    for w in cfg["workloads"]:
        metric, higher = get_workload(w).objective
        arms = [(f"{m}__{w}__lr{slug(lr)}", lr) for m in ("sf_sgd", "sf_sgd_hi") for lr in ms[m].lrs or ()]
        pick, _ = lr_grid_best(table, arms, metric, higher)
        row.update({f"{w}_{k}": v for k, v in table.metrics_of(pick).items()})
        row.update(_anytime_of(cfg, table, pick, w))
    derived["sf_sgd_wide"] = row


def anytime(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    """``<workload>_test_acc_quarter`` / ``_half`` of the full-length arms, from their per-epoch series."""
    ms = _methods(cfg)
    for m in FULL_LENGTH:
        for w in cfg["workloads"]:
            if ms[m].lrs is None:
                arm = f"{m}__{w}"
            else:
                arm = f"{m}__{w}__lr{slug(derived[m][f'{w}_lr'][0])}"
            derived[m].update(_anytime_of(cfg, table, arm, w))
    widen(cfg, table, derived)


EXPERIMENT = optbench("schedule_free_optimization", _methods, extra_derive=anytime,
                      plot_methods=lambda cfg: list(FULL_LENGTH))
