"""Dynamic per-input unit pruning with self-supervised mask predictors vs static L1 channel pruning.

Every arm of a seed starts from the same pretrained dense LeNet-300-100 and fine-tunes for the
same epochs with the same optimizer and batch order. The ``fire`` arms wrap the network in
:class:`zoo.pruning.dynamic_mask_prediction.DynamicMaskedMLP` (one mask predictor per hidden
layer, trained on heatmap-mass targets jointly with the network); the ``l1`` arms remove a fixed
fraction of each hidden layer's units by L1 norm (:mod:`zoo.pruning.l1_channel`). A dynamic
model keeps all its weights, so its cost is the **expected MACs** of the masks it actually uses
on the test split, predictor MACs included (``expected_macs``); a static model's is its exported
``macs``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.experiments._compressbench import Batch, Method, compressbench, register
from zoo.pruning.dynamic_mask_prediction import DynamicMaskedMLP, expected_macs

__all__ = ["FireTogether", "EXPERIMENT"]


@register("fire_together")
class FireTogether(Method):
    """Options: ``mass`` (heatmap-mass fraction r of the targets), ``lam`` (mask-loss weight),
    ``rank`` (predictor head rank), ``teacher_forcing`` (fraction of training steps that apply the
    target masks instead of the predicted ones), ``svd_init`` (predictors start from the gated
    layers' truncated SVD)."""

    defaults = {"mass": 0.9, "lam": 1.0, "rank": 16, "teacher_forcing": 0.25, "svd_init": False}

    def attach(self, model: nn.Module) -> nn.Module:
        self.net = DynamicMaskedMLP(model, float(self.opt["mass"]), int(self.opt["rank"]), bool(self.opt["svd_init"]))
        # the paper's budget estimate before training: the cost of the heatmap-mass targets of the
        # pretrained network on the training inputs (what perfect predictors would keep)
        self.net.mode = "target"
        self.estimate = expected_macs(self.net, self.task.x_train)
        self.net.mode = "predicted"
        return self.net

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        model.mode = "target" if batch.progress < float(self.opt["teacher_forcing"]) else "predicted"
        task = F.cross_entropy(model(batch.x), batch.y)
        return task + float(self.opt["lam"]) * model.mask_loss()

    def compress(self, model: nn.Module) -> nn.Module:
        model.mode = "predicted"
        return model

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        x = self.task.x_test
        exported.mode = "predicted"
        cost = expected_macs(exported, x)
        with torch.no_grad():
            exported(x)
            pred = list(exported.masks)
            exported.mode = "target"
            exported(x)
            agree = torch.cat([(p == t).float().flatten() for p, t in zip(pred, exported.masks)]).mean()
            exported.mode = "predicted"
        return {"expected_macs": cost["macs"], "expected_macs_ratio": cost["macs"] / cost["dense_macs"],
                "predictor_macs": cost["predictor_macs"], "kept_units": cost["kept"],
                "mask_agreement": float(agree), "estimated_macs_ratio": self.estimate["macs"] / cost["dense_macs"],
                "estimated_kept": self.estimate["kept"]}


EXPERIMENT = compressbench("fire_together_wire_together")
