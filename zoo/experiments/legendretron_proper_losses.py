"""LegendreTron (Lam et al., ICML 2023) at small scale: a jointly learned proper canonical loss vs multinomial logistic regression.

The paper's claim: on LIBSVM, MNIST-family and other benchmarks, a linear model trained through
a jointly learned inverse canonical link (LegendreTron) beats multinomial logistic regression
(the same linear model with the softmax link) under a t-test at 99% significance on every
dataset with more than 10 classes; with 10 classes or fewer the two are close.

Built on the family's harness (:mod:`zoo.experiments._classbench`): one job trains one linear
model (``model: {kind: linear}``, C outputs) on one seed and one setting, from the seed's
initial weights and batch order, under the shared optimizer (Adam with coupled L2 weight
decay, as in the authors' runs) and schedule. Arms:

* ``mlr``: cross-entropy on the C logits (multinomial logistic regression);
* ``legendretron``: the :class:`LegendreTronObjective`, which owns a
  :class:`zoo.losses.legendretron.LegendreLink` (trained with the model under the same
  optimizer) and trains on the log loss of ``psi^{-1}(z_{1:C-1} - z_C)``; it predicts with the
  learned link, so every test metric (accuracy, NLL, ECE) is the learned model's.

The link's weights are drawn after the model's, so the linear model starts from the same
weights in both arms.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.experiments._classbench import Batch, Method, Objective, classbench
from zoo.losses.legendretron import LegendreLink, legendretron_nll
from zoo.workloads.classification import UNLABELLED, Task

__all__ = ["EXPERIMENT", "LegendreTronObjective"]


class LegendreTronObjective(Objective):
    """Log loss through a jointly learned Legendre link; predicts log-probabilities through it."""

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module) -> None:
        super().__init__(task, cfg, model)
        lk = dict(cfg.get("link") or {})
        self.link = LegendreLink(task.num_classes, int(lk.get("blocks", 2)), int(lk.get("hidden", 2)),
                                 int(lk.get("depth", 4)))

    def modules(self) -> list[nn.Module]:
        return [self.link]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return legendretron_nll(model(batch.x), batch.y, self.link, ignore_index=UNLABELLED)

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self.link.log_probs(model(x)).detach()


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {"mlr": Method(loss=_ce), "legendretron": Method(objective=LegendreTronObjective)}


EXPERIMENT = classbench("legendretron_proper_losses", _methods)
