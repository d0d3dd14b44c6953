"""RoBoT (He et al., ICLR 2024) on a toy search space: a BO-weighted combination of training-free
metrics plus greedy exploitation, against each single metric given the same query budget.

Per seed, the pool is ``n_archs`` random ReLU MLPs on digits (:mod:`zoo.nas.space`), each scored
at initialisation with the metric pool grad_norm, snip, synflow, NWOT and SWAP and trained once
with the shared recipe; a *query* reads an architecture's validation accuracy (a benchmark
look-up, as on NAS-Bench), and every arm reports the **test** accuracy of the queried
architecture with the best validation accuracy, and its regret (pool's best test accuracy minus
it). Arms, all with ``budget`` = ``T`` distinct queries:

* ``robot``: :func:`zoo.nas.robot.robot_search` with ``bo_iters`` = ``T0`` BO iterations;
* ``<metric>``: greedy search on one metric (query its top-``T`` architectures);
* ``best_single`` (derived): per seed, the best of the single-metric arms in hindsight (lowest
  regret), the paper's strongest comparison; ``random``: ``T`` architectures drawn at random.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.harness import Env, Experiment, JobContext, JobOutput, Table
from zoo.nas.robot import greedy_search, robot_search, standardise
from zoo.nas.space import evaluate_pool, sample_architectures
from zoo.training import load_dataset

__all__ = ["EXPERIMENT", "METRICS"]

METRICS = ("grad_norm", "snip", "synflow", "nwot", "swap")
_LOG = {"grad_norm": True, "snip": True, "synflow": True, "nwot": False, "swap": True}


def _setup(cfg: dict[str, Any], env: Env) -> Any:
    return load_dataset(str(cfg["dataset"]), env.data_dir, env.device)


def _per_seed(cfg: dict[str, Any], seed: int, env: Env, base: Any, shared: Any) -> dict[str, list[float]]:
    data = base.with_validation(float(cfg["val_fraction"]), seed=int(seed))
    archs = sample_architectures(int(cfg["n_archs"]), seed, tuple(cfg["depths"]), tuple(cfg["widths"]))
    return evaluate_pool(archs, data, data.x_val, data.y_val, proxies=METRICS, score_batch=int(cfg["score_batch"]),
                         epochs=int(cfg["epochs"]), lr=float(cfg["lr"]), batch_size=int(cfg["batch_size"]), seed=seed)


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    pool = ctx.seed_state
    val, test = np.asarray(pool["val_acc"]), np.asarray(pool["test_acc"])
    budget = int(cfg["budget"])
    query = lambda a: float(val[a])  # noqa: E731
    if arm == "robot":
        metrics = np.stack([standardise(pool[m], log=_LOG[m]) for m in METRICS], axis=1)
        best = robot_search(metrics, query, budget, int(cfg["bo_iters"]), seed).best
    elif arm == "random":
        rng = np.random.default_rng(int(seed) + 999)
        picks = rng.choice(len(val), size=budget, replace=False)
        best = int(picks[np.argmax(val[picks])])
    else:
        best, _ = greedy_search(standardise(pool[arm], log=_LOG[arm]), query, budget)
    acc = float(test[best])
    return JobOutput({"test_acc": acc, "regret": float(test.max()) - acc, "pool_max_acc": float(test.max()),
                      "pool_median_acc": float(np.median(test))})


def _derive(cfg: dict[str, Any], table: Table) -> dict[str, dict[str, list[float]]]:
    rows = {m: table.metric(m, "regret") for m in METRICS}
    pick = [min(METRICS, key=lambda m: rows[m][i]) for i in range(len(table.seeds))]
    return {"best_single": {k: [table.metric(m, k)[i] for i, m in enumerate(pick)]
                            for k in ("test_acc", "regret", "pool_max_acc", "pool_median_acc")}}


EXPERIMENT = Experiment(name="robot_training_free_nas", arms=lambda cfg: ["robot", "random", *METRICS], job=_job,
                        setup=_setup, per_seed=_per_seed, derive=_derive)
