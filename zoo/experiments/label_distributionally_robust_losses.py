"""Label-distributionally robust losses (Zhu, Ying & Yang, ICML 2023) at small scale: digits with label noise.

The paper's claim: the adaptive LDR loss (ALDR-KL, a per-example temperature) performs stably and
competitively against CE and the robust losses (GCE, SCE, NCE+RCE, ...) across symmetric and
class-dependent noise, every loss's hyper-parameter tuned on a validation split from the same
small grid (their code: 3 values each).

Built on :mod:`zoo.experiments._classbench`: one job trains one MLP on scikit-learn digits with one
loss at one grid value, in one noise setting (80% symmetric, or 40% asymmetric with Patrini et
al.'s class map), from the seed's initial weights and batch order with the shared Adam optimizer
and cosine schedule. The grids are the authors' (3 values per loss, 1 for CE); each method's
value is picked per setting by the mean accuracy on the *noisy* validation split
(:func:`~zoo.experiments._classbench.pick_by_validation`), never on test. ``best_baseline`` is,
per setting, the validation-best of the tuned CE, GCE, SCE and NCE+RCE.

ALDR-KL is an :class:`~zoo.experiments._classbench.Objective` holding
:class:`~zoo.losses.label_distributionally_robust.ALDRKLLoss` with one temperature per training
example (indexed by ``Batch.idx``); every other arm is a loss on logits.

Metrics (``<setting>_<metric>``) are the picked grid point's; ``<setting>_pick`` is the index of the
picked value in the arm's grid; ``test_acc`` / ``test_ece`` without prefix are the headline
setting's.
"""

from __future__ import annotations

import statistics
import sys
from functools import partial
from typing import Any

import torch
from torch import nn

from zoo.experiments._classbench import Batch, Method, Objective, classbench, pick_by_validation, settings_of
from zoo.experiments._noisy_losses import LOSS_NAMES, headline_derive, loss_method
from zoo.harness import Table
from zoo.losses.label_distributionally_robust import ALDRKLLoss, ldr_kl_loss
from zoo.workloads.classification import UNLABELLED, Task

__all__ = ["EXPERIMENT", "ALDRObjective", "grids", "BASELINES"]

BASELINES = ("ce", "gce", "sce", "nce_rce")


class ALDRObjective(Objective):
    """ALDR-KL with a temperature per training example, read and updated by ``batch.idx``."""

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module, **kw: Any) -> None:
        super().__init__(task, cfg, model)
        self.aldr = ALDRKLLoss(num_examples=task.n_train, ignore_index=UNLABELLED, **kw).to(task.x_train.device)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.aldr(model(batch.x), batch.y, batch.idx)


def _ldr(logits: torch.Tensor, y: torch.Tensor, kw: dict[str, Any]) -> torch.Tensor:
    fn = getattr(sys.modules[__name__], "ldr_kl_loss")  # at call time: a test may spy on it
    return fn(logits, y, ignore_index=UNLABELLED, **kw)


def _aldr(kw: dict[str, Any]) -> Any:
    def make(task: Task, cfg: dict[str, Any], model: nn.Module) -> Objective:
        return ALDRObjective(task, cfg, model, **kw)

    return make


def grids(cfg: dict[str, Any]) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    """arm -> its grid: ``[(grid method name, loss name, kwargs), ...]`` (one entry: no tuning)."""
    out: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for arm, points in cfg["arms"].items():
        pts = points if isinstance(points, list) else [points]
        rows = []
        for i, p in enumerate(pts):
            p = dict(p)
            name = str(p.pop("loss"))
            rows.append((f"{arm}_g{i}" if len(pts) > 1 else str(arm), name, p))
        out[str(arm)] = rows
    return out


def _method(name: str, kw: dict[str, Any]) -> Method:
    if name == "ldr_kl":
        return Method(loss=partial(_ldr, kw=dict(kw)))
    if name == "aldr_kl":
        return Method(objective=_aldr(dict(kw)))
    if name in LOSS_NAMES:
        return loss_method(name, kw)
    raise ValueError(f"unknown loss {name!r}: use ldr_kl, aldr_kl or one of {sorted(LOSS_NAMES)}")


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {g: _method(name, kw) for rows in grids(cfg).values() for g, name, kw in rows}


def _copy(derived: dict[str, dict[str, list[float]]], src: str, dst: str, setting: str) -> None:
    for k, v in derived.get(src, {}).items():
        if k.startswith(f"{setting}_"):
            derived.setdefault(dst, {})[k] = list(v)


def _derive(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    n = len(table.seeds)
    for s in settings_of(cfg) or []:
        for arm, rows in grids(cfg).items():
            names = [g for g, _, _ in rows]
            if len(names) == 1:
                derived.setdefault(arm, {})[f"{s}_pick"] = [0.0] * n
                continue
            pick = pick_by_validation(table, [f"{g}__{s}" for g in names])
            g = pick.rsplit("__", 1)[0]
            _copy(derived, g, arm, s)
            derived[arm][f"{s}_pick"] = [float(names.index(g))] * n
        base = [b for b in BASELINES if b in grids(cfg)]
        if base:
            best = max(base, key=lambda b: statistics.fmean(derived[b][f"{s}_val_acc"]))  # first listed on ties
            _copy(derived, best, "best_baseline", s)
            derived["best_baseline"][f"{s}_pick"] = [float(base.index(best))] * n
    headline_derive(cfg, table, derived)


def _plotted(cfg: dict[str, Any]) -> list[str]:
    return [rows[len(rows) // 2][0] for rows in grids(cfg).values()]


EXPERIMENT = classbench("label_distributionally_robust_losses", _methods, extra_derive=_derive, plot_methods=_plotted)
