"""Lottery tickets in evolution strategies (Lange & Sprekeler, ICML 2023) at small scale.

One job = one pruning criterion on one seed: a ReLU MLP on digits (initialised from the seed,
the same for every arm) is trained with diagonal-Gaussian OpenAI-ES
(:func:`zoo.pruning.es_tickets.train_es`, the same ES settings for every arm), then pruned
iteratively (:func:`zoo.pruning.es_tickets.iterative_pruning`: drop ``rate`` of the remaining
weights, rewind to the initialisation, retrain) for ``rounds`` rounds. Arms differ only in the
pruning score: ``magnitude`` (|mu|), ``snr`` (|mu|/sigma) and ``random``. Metrics: test accuracy
after each round (``acc_r<k>``, round 0 = dense), the dense and final accuracies and the final
sparsity (percent of weights removed).
"""

from __future__ import annotations

from typing import Any

from zoo.harness import Env, Experiment, JobContext, JobOutput
from zoo.nas.space import build
from zoo.pruning.es_tickets import ESConfig, iterative_pruning
from zoo.training import evaluate, load_dataset

__all__ = ["EXPERIMENT", "ARMS"]

ARMS = ("magnitude", "snr", "random")


def _setup(cfg: dict[str, Any], env: Env) -> Any:
    return load_dataset(str(cfg["dataset"]), env.data_dir, env.device)


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    d = ctx.setup
    es = ESConfig(**cfg["es"])
    hidden = tuple(int(h) for h in cfg["hidden"])
    rows = iterative_pruning(lambda: build(hidden, 64, d.num_classes, int(seed), d.x_train.device),
                             d.x_train.flatten(1), d.y_train, es, rounds=int(cfg["rounds"]), rate=float(cfg["rate"]),
                             criterion=arm, seed=int(seed), evaluate=lambda m: evaluate(m, d.x_test, d.y_test)["acc"])
    out = {f"acc_r{int(r['round'])}": r["acc"] for r in rows}
    out.update(dense_acc=rows[0]["acc"], final_acc=rows[-1]["acc"], final_sparsity=rows[-1]["sparsity"])
    return JobOutput(out, {"acc": [r["acc"] for r in rows], "sparsity": [r["sparsity"] for r in rows]})


EXPERIMENT = Experiment(name="evolutionary_lottery_tickets", arms=lambda cfg: list(ARMS), job=_job, setup=_setup)
