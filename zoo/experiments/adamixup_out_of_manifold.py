"""AdaMixUp (Guo, Mao & Zhang, AAAI 2019) at small scale: ERM vs MixUp vs AdaMixUp on digits.

The paper's claim: AdaMixUp, which learns per-pair mixing regions and penalises mixed points
that an intrusion discriminator takes for real data, has a lower test error than MixUp, which in
turn beats (or, on MNIST, roughly matches) plain empirical risk minimisation.

Built on the classification harness (:mod:`zoo.experiments._classbench`): each arm trains the
seed's shared CNN (same initial weights, same batches, optimizer, schedule and epochs); the arms
differ in their objective only:

* ``erm``: cross-entropy on the batch (the harness's default objective);
* ``mixup``: :func:`zoo.regularizers.mixup.mixup_loss` with ``alpha = 1`` (``lam ~ U(0, 1)``,
  one per pair, as in the AdaMixUp authors' MixUp baseline), mixed points only;
* ``adamixup``: :func:`zoo.regularizers.adamixup.adamixup_loss`, with its policy region
  generator (a re-initialised copy of the CNN plus a 100-3 head) and intrusion discriminator
  (a 10-1 head on the CNN's penultimate features) as extra modules trained by the shared
  optimizer.

Extra metrics of the AdaMixUp arm: ``policy_a``, ``policy_delta`` and ``policy_lam``, the mean
region start, width and drawn ``lam`` over the last epoch's pairs (where the learned policy mixes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.experiments._classbench import Batch, Method, Objective, classbench
from zoo.regularizers import adamixup as ada
from zoo.regularizers import mixup as mx
from zoo.workloads.classification import UNLABELLED, Task

__all__ = ["EXPERIMENT", "MixUp", "AdaMixUp"]


def _stream(task: Task, offset: int) -> torch.Generator:
    # one deterministic stream per task (it depends on the seed through the split), the same for every arm
    return torch.Generator().manual_seed(int(task.y_train.sum()) * 7919 + task.n_train + offset)


class MixUp(Objective):
    """MixUp on the batch (``alpha`` from ``cfg["mixup_alpha"]``, one ``lam`` per pair)."""

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module) -> None:
        super().__init__(task, cfg, model)
        self.alpha = float(cfg.get("mixup_alpha", 1.0))
        self.g = _stream(task, 1)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        keep = batch.y != UNLABELLED
        return mx.mixup_loss(model, batch.x[keep], batch.y[keep], self.alpha, generator=self.g, per_example=True)


class AdaMixUp(Objective):
    """AdaMixUp on the batch; owns the policy region generator and the intrusion discriminator."""

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module) -> None:
        super().__init__(task, cfg, model)
        self.policy = ada.PolicyRegionGenerator.from_classifier(model)
        self.disc = ada.IntrusionDiscriminator(ada.feature_width(model))
        self.g = _stream(task, 2)
        self.weight = float(cfg.get("intrusion_weight", 1.0))
        self._epoch: list[tuple[float, float, float]] = []
        self._last: list[tuple[float, float, float]] = []

    def modules(self) -> list[nn.Module]:
        return [self.policy, self.disc]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        keep = batch.y != UNLABELLED
        terms = ada.adamixup_loss(model, self.policy, self.disc, batch.x[keep], batch.y[keep], generator=self.g,
                                  intrusion_weight=self.weight)
        self._epoch.append((float(terms.a.mean()), float(terms.delta.mean()), float(terms.lam.mean())))
        return terms.total

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        self._last, self._epoch = self._epoch, []

    def metrics(self, model: nn.Module) -> dict[str, float]:
        rows = self._last or [(float("nan"),) * 3]
        n = len(rows)
        return {"policy_a": sum(r[0] for r in rows) / n, "policy_delta": sum(r[1] for r in rows) / n,
                "policy_lam": sum(r[2] for r in rows) / n}


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {"erm": Method(objective=Objective), "mixup": Method(objective=MixUp), "adamixup": Method(objective=AdaMixUp)}


EXPERIMENT = classbench("adamixup_out_of_manifold", _methods)
