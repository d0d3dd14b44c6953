"""Mono-Forward and Forward-Forward against back-propagation MLPs of the same widths (Spyra 2025, small scale).

Arms (each on every workload of ``cfg["workloads"]``, the workload's batch size and epochs):

* ``mono_forward``: Mono-Forward (:mod:`zoo.learning_rules.mono_forward`) with the workload MLP's
  hidden widths, one Adam per layer, lr picked from ``mf_lrs`` by mean validation accuracy over
  seeds (internal arms ``mono_forward_lr<x>``);
* ``forward_forward``: Forward-Forward (:mod:`zoo.learning_rules.forward_forward`), the same widths,
  threshold ``ff_threshold``, Adam per layer, lr picked from ``ff_lrs`` the same way;
* ``adam_tuned``: back-propagation, the workload's own MLP in the shared loop with Adam at the
  family's tuned constant learning rate (``reproductions/_baselines/optim/tuned.json``, ``adam``).
"""

from __future__ import annotations

from typing import Any

from zoo.experiments._local_rules import forward_forward, grid, grid_derive, mono_forward, with_curves
from zoo.experiments._optbench import Method, optbench, tuned
from zoo.experiments._optim_tuning import build_baseline

__all__ = ["EXPERIMENT"]


def _grids(cfg: dict[str, Any]) -> dict[str, list[float]]:
    return {"mono_forward": list(cfg["mf_lrs"]), "forward_forward": list(cfg["ff_lrs"])}


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {
        **grid("mono_forward", cfg["mf_lrs"], mono_forward),
        **grid("forward_forward", cfg["ff_lrs"], forward_forward),
        "adam_tuned": tuned("adam", lambda p, steps, lr, cfg, w: build_baseline("adam", p, steps, float(lr))),
    }


EXPERIMENT = with_curves(optbench("backprop_free_training_comparison", _methods, extra_derive=grid_derive(_grids)), _grids,
                         lambda cfg: ["adam_tuned"])
