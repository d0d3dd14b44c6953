"""Instant per-layer updates during back-propagation (our reading) against back-propagation with SGD.

Arms (each on every workload of ``cfg["workloads"]``, the workload's own MLP and its seed's
initialisation, batch size, batch order and epochs; plain SGD, no momentum, constant lr):

* ``instant``: :func:`zoo.learning_rules.instant_update.instant_update_step` (each layer updated as
  soon as its gradient is known, the error passed down through the updated weights), lr picked
  from ``sgd_lrs`` by mean validation accuracy over seeds (internal arms ``instant_lr<x>``);
* ``sgd``: back-propagation then one ``torch.optim.SGD`` step, in the shared loop, on the same grid
  and picked the same way (internal arms ``sgd__<workload>__lr<x>``);
* ``adam_tuned``: back-propagation with Adam at the family's tuned constant learning rate, for scale.
"""

from __future__ import annotations

from typing import Any

import torch

from zoo.experiments._local_rules import grid, grid_derive, instant, with_curves
from zoo.experiments._optbench import Method, optbench, tuned
from zoo.experiments._optim_tuning import build_baseline

__all__ = ["EXPERIMENT"]


def _grids(cfg: dict[str, Any]) -> dict[str, list[float]]:
    return {"instant": list(cfg["sgd_lrs"])}


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {
        **grid("instant", cfg["sgd_lrs"], instant),
        "sgd": Method(build=lambda p, steps, lr, cfg, w: (torch.optim.SGD(p, lr=float(lr)), None),
                      lrs=tuple(float(v) for v in cfg["sgd_lrs"])),
        "adam_tuned": tuned("adam", lambda p, steps, lr, cfg, w: build_baseline("adam", p, steps, float(lr))),
    }


EXPERIMENT = with_curves(optbench("instant_parameter_update_backprop", _methods, extra_derive=grid_derive(_grids)), _grids,
                         lambda cfg: ["sgd", "adam_tuned"], lr_label="learning rate (plain SGD)")
