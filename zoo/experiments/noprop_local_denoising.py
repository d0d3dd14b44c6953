"""NoProp-DT (Li, Teh & Pascanu 2025) against Forward-Forward and back-propagation, on the shared workloads.

Arms (each on every workload of ``cfg["workloads"]``, the workload's batch size and epochs):

* ``noprop``: NoProp-DT (:mod:`zoo.learning_rules.noprop`), ``noprop_T`` blocks whose image paths
  have the workload MLP's hidden widths, ``η = noprop_eta``, learned class embeddings (identity
  initialisation), one Adam per block; its Adam learning rate picked from ``noprop_lrs`` by mean
  validation accuracy over seeds (internal arms ``noprop_lr<x>``). One epoch trains every block
  once over the data (the paper's Algorithm 1);
* ``forward_forward``: Forward-Forward (:mod:`zoo.learning_rules.forward_forward`) with the workload
  MLP's hidden widths, threshold ``ff_threshold``, Adam per layer, lr picked from ``ff_lrs`` the same way;
* ``adam_tuned``: back-propagation, the workload's own MLP trained by the shared loop with Adam at the
  family's tuned constant learning rate (``reproductions/_baselines/optim/tuned.json``, ``adam``).
"""

from __future__ import annotations

from typing import Any

from zoo.experiments._local_rules import forward_forward, grid, grid_derive, noprop, with_curves
from zoo.experiments._optbench import Method, optbench, tuned
from zoo.experiments._optim_tuning import build_baseline

__all__ = ["EXPERIMENT"]


def _grids(cfg: dict[str, Any]) -> dict[str, list[float]]:
    return {"noprop": list(cfg["noprop_lrs"]), "forward_forward": list(cfg["ff_lrs"])}


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {
        **grid("noprop", cfg["noprop_lrs"], noprop),
        **grid("forward_forward", cfg["ff_lrs"], forward_forward),
        "adam_tuned": tuned("adam", lambda p, steps, lr, cfg, w: build_baseline("adam", p, steps, float(lr))),
    }


EXPERIMENT = with_curves(optbench("noprop_local_denoising", _methods, extra_derive=grid_derive(_grids)), _grids,
                         lambda cfg: ["adam_tuned"])
