"""PS-KD (Kim et al., ICCV 2021) at small scale: self-distillation targets vs CE and label smoothing.

The paper's classification claims: with targets progressively mixed with the model's own
previous-epoch predictions (``alpha_T = 0.8``), PS-KD beats cross-entropy and label smoothing in
accuracy and gives much better calibration (lower ECE) on CIFAR-100 and ImageNet.

Built on the family's classification harness (:mod:`zoo.experiments._classbench`): every arm of a
seed trains the same MLP from the same initial weights on the same batches with the shared
optimizer and schedule. Arms:

* ``ce``: cross-entropy on the label;
* ``ls``: label smoothing at ``cfg["ls_epsilon"]`` (torch's);
* ``pskd``: :class:`PSKDObjective`: the PS-KD target of each example uses that example's softmax
  from its previous visit (one visit per epoch), kept in a per-example table indexed by
  ``batch.idx``, written right after the example's forward pass as the authors' code does; the
  table starts as the one-hot labels, so epoch 1 trains on the labels.

Neither ``alpha_T`` nor the smoothing ``epsilon`` is tuned: both are the papers' defaults.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.experiments._classbench import Batch, Method, Objective, classbench
from zoo.harness import Table
from zoo.losses.ps_kd import ps_kd_cross_entropy, pskd_alpha
from zoo.workloads.classification import Task

__all__ = ["EXPERIMENT", "PSKDObjective"]


def _ce(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(logits, y, label_smoothing=label_smoothing)


class PSKDObjective(Objective):
    """PS-KD: each example's target mixes its label with its own prediction from the previous epoch."""

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module) -> None:
        super().__init__(task, cfg, model)
        self.alpha_T = float(cfg.get("alpha_T", 0.8))
        # P_0 = the one-hot label (the authors' initialisation): epoch 1's target is the label.
        self.prev = F.one_hot(task.y_train.clamp_min(0), task.num_classes).float()
        self.alphas: list[float] = []

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch.x)
        alpha = pskd_alpha(batch.epoch, batch.epochs, self.alpha_T)
        self.alphas.append(alpha)
        teacher = self.prev[batch.idx]
        loss = ps_kd_cross_entropy(logits, batch.y, teacher, alpha)
        # remembered for the example's next visit, i.e. the next epoch's target
        self.prev[batch.idx] = logits.detach().softmax(-1).to(self.prev.dtype)
        return loss


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    eps = float(cfg.get("ls_epsilon", 0.1))
    return {"ce": Method(loss=_ce), "ls": Method(loss=partial(_ce, label_smoothing=eps)),
            "pskd": Method(objective=PSKDObjective)}


def _derive(cfg: dict[str, Any], table: Table, out: dict[str, dict[str, list[float]]]) -> None:
    """``ece_rel_ce``: each seed's ECE of the arm over cross-entropy's ECE (the paper's relative gain)."""
    ce = table.metric("ce", "test_ece")
    for arm in ("ls", "pskd"):
        mine = table.metric(arm, "test_ece")
        # a derived arm replaces the job arm of its name: keep the job's metrics beside the ratio
        out[arm] = {**table.metrics_of(arm), **out.get(arm, {}),
                    "ece_rel_ce": [m / c if c > 0 else float("nan") for m, c in zip(mine, ce, strict=True)]}


EXPERIMENT = classbench("progressive_self_knowledge_distillation", _methods, extra_derive=_derive)
