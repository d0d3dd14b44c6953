"""Gravity (Bahrami & Zadeh, 2021) at its proposed defaults against Adam and RMSProp.

Every arm trains the same workloads (:mod:`zoo.workloads.optim`: same data, initialisation, batch
order and epochs per arm and seed), at a constant learning rate (the paper uses no schedule and no
regularisation):

* ``gravity``: :class:`zoo.optim.gravity.Gravity` at the paper's proposed defaults, lr 0.1,
  alpha 0.01, beta 0.9, untuned on every workload; its random initial velocity is drawn from the
  job's seeded generator;
* ``adam``: the family's tuned constant-lr Adam (``tuned.json``: betas (0.9, 0.999), lr chosen
  per workload on validation);
* ``adam_default``: ``torch.optim.Adam`` at its library default, lr 1e-3;
* ``rmsprop_default``: ``torch.optim.RMSprop`` at Keras' defaults (lr 1e-3, rho 0.9, eps 1e-7;
  the authors' code is Keras).

:func:`stability` adds two per-seed measures of how stable a run is, for every arm and workload:
``<workload>_seed_dev``, the absolute deviation of the seed's final test accuracy from the arm's
mean over seeds (its mean over seeds is the across-seed mean absolute deviation), and
``<workload>_fluct``, the mean absolute epoch-to-epoch change of the test accuracy over the
second half of the run.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from zoo.experiments._optbench import Method, optbench, tuned
from zoo.experiments._optim_tuning import build_baseline
from zoo.harness import Table
from zoo.optim.gravity import Gravity

__all__ = ["EXPERIMENT", "stability", "fluctuation"]


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    g = cfg["gravity"]
    return {
        "gravity": Method(build=lambda p, steps, lr, c, w: (
            Gravity(p, lr=float(g["lr"]), alpha=float(g["alpha"]), beta=float(g["beta"])), None)),
        "adam": tuned("adam", lambda p, steps, lr, c, w: build_baseline("adam", p, steps, lr)),
        "adam_default": Method(build=lambda p, steps, lr, c, w: (torch.optim.Adam(p, lr=1e-3), None)),
        "rmsprop_default": Method(build=lambda p, steps, lr, c, w: (
            torch.optim.RMSprop(p, lr=1e-3, alpha=0.9, eps=1e-7), None)),
    }


def fluctuation(curve: list[float]) -> float:
    """Mean absolute epoch-to-epoch change over the second half of ``curve`` (its last ``len // 2`` changes)."""
    tail = curve[len(curve) - len(curve) // 2 - 1:]
    return statistics.fmean(abs(b - a) for a, b in zip(tail, tail[1:]))


def stability(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    """``<workload>_seed_dev`` and ``<workload>_fluct`` (per seed) for every arm."""
    for m in _methods(cfg):
        for w in cfg["workloads"]:
            acc = derived[m][f"{w}_test_acc"]
            mean = statistics.fmean(acc)
            derived[m][f"{w}_seed_dev"] = [abs(a - mean) for a in acc]
            derived[m][f"{w}_fluct"] = [fluctuation(row) for row in table.series(f"{m}__{w}", "test_acc")]


EXPERIMENT = optbench("gravity_optimizer", _methods, extra_derive=stability)
