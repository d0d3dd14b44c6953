"""Early-learning regularization (Liu et al., NeurIPS 2020) at small scale: digits with symmetric noise.

The paper's claims: under label noise a network trained with cross-entropy first fits the clean
labels (test accuracy peaks) and then memorises the wrong ones (test accuracy falls, the share of
corrupted labels it fits climbs); ELR's temporal-ensemble targets block the memorisation, so its
test accuracy does not fall and it fits far fewer corrupted labels (their Figures 1 and 3).

Built on :mod:`zoo.experiments._classbench`: one job trains one MLP on scikit-learn digits in one
noise setting (symmetric 40% or 60%), from the seed's initial weights and batch order with the
shared Adam optimizer and cosine schedule. The ``ce`` arm is the harness's default objective;
the ELR arms are an :class:`~zoo.experiments._classbench.Objective` holding
:class:`~zoo.regularizers.early_learning_regularization.EarlyLearningRegularization`, whose
per-example targets are indexed by the harness's ``Batch.idx``.

Metrics per arm and setting (``<setting>_<metric>``): the harness's final and peak test accuracy,
the drop between them, the share of corrupted labels memorised (and per epoch), plus
``<setting>_memorised_vs_ce``: an arm's memorised share over CE's, per seed (1 for CE itself).
``test_acc`` / ``test_ece`` without prefix are the headline setting's (60%).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.experiments._classbench import Batch, Method, Objective, classbench, settings_of
from zoo.experiments._noisy_losses import headline_derive
from zoo.harness import Table
from zoo.regularizers.early_learning_regularization import EarlyLearningRegularization
from zoo.workloads.classification import UNLABELLED, Task

__all__ = ["EXPERIMENT", "ELRObjective"]


class ELRObjective(Objective):
    """Cross-entropy plus the ELR term, with targets kept per training example (by ``batch.idx``)."""

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module, beta: float, lam: float) -> None:
        super().__init__(task, cfg, model)
        self.elr = EarlyLearningRegularization(task.n_train, task.num_classes, beta=beta, lam=lam,
                                               ignore_index=UNLABELLED).to(task.x_train.device)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.elr(model(batch.x), batch.y, batch.idx)


def _elr(beta: float, lam: float) -> Any:
    def make(task: Task, cfg: dict[str, Any], model: nn.Module) -> Objective:
        return ELRObjective(task, cfg, model, beta, lam)

    return make


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    out: dict[str, Method] = {}
    for arm, spec in cfg["arms"].items():
        spec = dict(spec or {})
        out[str(arm)] = Method() if not spec else Method(objective=_elr(float(spec["beta"]), float(spec["lam"])))
    return out


def _derive(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    headline_derive(cfg, table, derived)
    for s in settings_of(cfg) or []:
        ce = derived.get("ce", {}).get(f"{s}_memorised")
        if ce is None:
            continue
        for arm, metrics in list(derived.items()):
            if f"{s}_memorised" in metrics:
                metrics[f"{s}_memorised_vs_ce"] = [m / c if c > 0 else float("nan")
                                                   for m, c in zip(metrics[f"{s}_memorised"], ce, strict=True)]


EXPERIMENT = classbench("early_learning_regularization", _methods, extra_derive=_derive)
