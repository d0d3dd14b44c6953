"""Pruning on-the-fly (hyperspherical training + bimodality penalty) vs one-shot magnitude pruning of a normally trained net.

Every arm of a seed starts from the same densely pretrained LeNet-300-100 and trains the same
number of epochs at the family's tuned Adam lr; then the pruned arms remove the same fraction of
every layer's smallest weights in one shot and are exported **without any fine-tuning**:

* ``oneshot``: the training phase is plain cross-entropy (a normally trained net), then magnitude pruning;
* ``otf``: the training phase keeps each neuron's weights on the unit sphere and adds the
  bimodality penalty of :mod:`zoo.pruning.hyperspherical_on_the_fly`, then the same pruning.

Both report ``unpruned_test_acc`` (the trained model just before pruning) and ``prune_drop``
(that minus the exported pruned model's test accuracy): the paper's "accuracy drop without
fine-tuning" is measured against each net's own unpruned accuracy.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.experiments._compressbench import METHODS, Batch, Method, _acc, compressbench, register
from zoo.pruning.hyperspherical_on_the_fly import model_penalty, project_model
from zoo.pruning.magnitude import GradualMagnitudePruning, harden_magnitude

__all__ = ["OneShotMagnitude", "PruningOnTheFly", "EXPERIMENT"]


class OneShotMagnitude(Method):
    """Train as the loss says, then prune ``target`` of the weights by magnitude in one shot (no fine-tuning)."""

    defaults: dict[str, Any] = {"target": 0.5, "allocation": "uniform"}

    def compress(self, model: nn.Module) -> nn.Module:
        self.unpruned_acc = _acc(model, self.task.x_test, self.task.y_test)
        pruner = GradualMagnitudePruning(model, float(self.opt["target"]), 0, 1, allocation=str(self.opt["allocation"]))
        pruner.prune_to(pruner.target)
        return harden_magnitude(model)

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        pruned = _acc(exported, self.task.x_test, self.task.y_test)
        return {"unpruned_test_acc": self.unpruned_acc, "prune_drop": self.unpruned_acc - pruned}


class PruningOnTheFly(OneShotMagnitude):
    """Hyperspherical training (rows projected to unit norm) + ``lmbda`` times the bimodality penalty at ratio ``target``."""

    defaults: dict[str, Any] = {**OneShotMagnitude.defaults, "lmbda": 0.1, "project": True}

    def attach(self, model: nn.Module) -> nn.Module:
        if self.opt["project"]:
            project_model(model)
        return model

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        ce = F.cross_entropy(model(batch.x), batch.y)
        return ce + float(self.opt["lmbda"]) * model_penalty(model, float(self.opt["target"]))

    def after_step(self, model: nn.Module) -> None:
        if self.opt["project"]:
            project_model(model)


for _name, _cls in (("oneshot_magnitude", OneShotMagnitude), ("pruning_on_the_fly", PruningOnTheFly)):
    if _name not in METHODS:
        register(_name)(_cls)

EXPERIMENT = compressbench("pruning_on_the_fly_hyperspherical")
