"""Backprop-free policy-gradient channel masks vs L1-norm channel pruning, both without retraining.

Every arm of a seed starts from the same pretrained dense model and none is fine-tuned
(``epochs: 0``): the policy-gradient arms learn Bernoulli keep-probabilities with forward passes
on training-split calibration batches (:mod:`zoo.pruning.policy_gradient_masks`), the baseline
keeps the channels of largest L1 norm.
"""

from __future__ import annotations

from torch import nn

from zoo.experiments._compressbench import Method, compressbench, register
from zoo.pruning.policy_gradient_masks import PolicyGradientMasks
from zoo.training.seed import generator

__all__ = ["PolicyGradient", "EXPERIMENT"]


@register("policy_gradient_masks")
class PolicyGradient(Method):
    defaults = {"keep": 0.5, "allocation": "global", "iterations": 200, "samples": 8, "lr": 0.05, "batch": 256}

    def attach(self, model: nn.Module) -> nn.Module:
        self.pg = PolicyGradientMasks(model, float(self.opt["keep"]), allocation=str(self.opt["allocation"]))
        self.hist = self.pg.fit(self.task.x_train, self.task.y_train, iterations=int(self.opt["iterations"]),
                                samples=int(self.opt["samples"]), lr=float(self.opt["lr"]),
                                batch=int(self.opt["batch"]), generator=generator(12345))
        return model

    def compress(self, model: nn.Module) -> nn.Module:
        self.keep = self.pg.layer_keep()
        return self.pg.harden()

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        return {"layer_keep_spread": max(self.keep) - min(self.keep), "calib_loss_drop": self.hist[0] - self.hist[-1]}


EXPERIMENT = compressbench("policy_gradient_llm_structural_pruning")
