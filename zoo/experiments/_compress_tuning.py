"""The compression family's tuned learning rate: Adam's, per shared workload, picked on validation.

Every compression entry trains all its arms with one optimizer (``optimizer: {name: adam, lr:
tuned}``): the learning rate chosen here for the workload, so no entry tunes it for its own method
and the baselines get the same tuning effort as every method. ``python -m zoo.baselines compress
--record`` writes ``reproductions/_baselines/compress/tuned.json``; the entries that use it list
that file in their spec's ``reproduction.code`` and go stale when it changes.

The grid is run for two of the family's baselines on each workload, from scratch, for
:data:`EPOCHS` epochs with a cosine schedule and batch 128: ``dense`` (the uncompressed model) and
``gmp`` (gradual magnitude pruning to 90% unstructured sparsity, ramped over 10-60% of training).
The learning rate entries use is the one with the best mean **validation** accuracy of the dense
model over :data:`TUNING_SEEDS` (ties to the smaller rate); GMP's own best is recorded beside it,
so a page can show whether the pruned baseline would have preferred another rate. The tuning
seeds are not the entries' evaluation seeds (0-9). A choice at the edge of the grid is flagged.
"""

from __future__ import annotations

import statistics
from typing import Any

from zoo.experiments._compressbench import compressbench, job_arms
from zoo.experiments._optbench import lr_grid_best, slug
from zoo.harness import Table

__all__ = ["EXPERIMENT", "CONFIG", "QUICK", "TUNING_SEEDS", "GRID", "WORKLOADS_TUNED", "select"]

TUNING_SEEDS = [100, 101, 102]
GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # a first grid 3e-4..1e-2 chose its upper edge everywhere
WORKLOADS_TUNED = ("lenet300_mnist5k", "lenet300_digits", "cnn_digits")
EPOCHS = 20
BASELINES = ("dense", "gmp")


def _config(workloads: tuple[str, ...], grid: tuple[float, ...], **extra: Any) -> dict[str, Any]:
    return {
        "epochs": EPOCHS, "pretrain_epochs": 0, "batch_size": 128, "schedule": "cosine", "latency_repeats": 3,
        "arms": {"dense": {"method": "dense"}, "gmp": {"method": "gmp", "target": 0.9}},
        "settings": {f"{w}__lr{slug(lr)}": {"workload": w, "optimizer": {"name": "adam", "lr": lr}}
                     for w in workloads for lr in grid},
        **extra,
    }


CONFIG: dict[str, Any] = _config(WORKLOADS_TUNED, GRID)
QUICK: dict[str, Any] = _config(("lenet300_digits",), (1e-3, 3e-3), epochs=2, n_train=300, n_test=100)

EXPERIMENT = compressbench("_compress_tuning")


def select(cfg: dict[str, Any], table: Table) -> dict[str, dict[str, dict[str, Any]]]:
    """``{workload: {baseline: {lr, value (mean val_acc), grid: {lr: mean}, at_edge}}}``."""
    jobs = job_arms(cfg)
    by_workload: dict[str, list[tuple[str, float]]] = {}
    for s, over in cfg["settings"].items():
        by_workload.setdefault(over["workload"], []).append((s, float(over["optimizer"]["lr"])))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for w, settings in by_workload.items():
        lrs = [lr for _, lr in settings]
        for b in BASELINES:
            arms = [(f"{b}__{s}", lr) for s, lr in settings]
            assert all(a in jobs for a, _ in arms)
            _, lr = lr_grid_best(table, arms, "val_acc", True)
            grid = {f"{g:g}": statistics.fmean(table.metric(a, "val_acc")) for a, g in arms}
            out.setdefault(w, {})[b] = {"lr": lr, "metric": "val_acc", "value": grid[f"{lr:g}"], "grid": grid,
                                        "at_edge": lr in (min(lrs), max(lrs))}
    return out
