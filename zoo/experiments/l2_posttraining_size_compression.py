"""L^2 post-training size compression vs post-training quantisation, after shared dense pretraining.

Every arm of a seed starts from the same dense LeNet-300-100 trained on MNIST-5k
(``pretrain_epochs``, the family's tuned Adam lr); no arm trains further (``epochs: 0``). The
``l2`` arms run :func:`zoo.quant.l2_post_training.l2_compress` (unified pruning + quantisation
transformation, differentiable entropy counter, global size budget ``ratio``) calibrated on
``n_calib`` inputs of the TRAINING split (never the test split); ``ptq`` quantises the same
weights to fixed bits. The size metrics are the exported model's; ``entropy_bytes`` /
``entropy_compression`` include the lossless (ANS) stage.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.experiments._compressbench import Method, compressbench, register
from zoo.quant.l2_post_training import l2_compress

__all__ = ["EXPERIMENT", "L2Method"]


@register("l2")
class L2Method(Method):
    """``ratio`` (global target: dense float32 bytes over coded bytes), ``n_calib`` training inputs, and
    the options of :func:`l2_compress`."""

    defaults: dict[str, Any] = {"ratio": 10.0, "n_calib": 512, "bits": 8, "step_bits": 5, "prune": 0.5,
                                "tau": 0.05, "lam": 2.0, "steps": 100, "lr": 0.03, "weight_lr": 1e-3,
                                "learn_weights": True, "sample": 4096, "calib": "train"}

    def calibration(self) -> torch.Tensor:
        x = self.task.x_train
        g = torch.Generator().manual_seed(0)
        idx = torch.randperm(x.shape[0], generator=g)[: int(self.opt["n_calib"])].to(x.device)
        x = x[idx]
        if self.opt["calib"] == "noise":  # ablation: calibration inputs carry no information about the data
            x = torch.randn(x.shape, generator=g).to(x.device) * x.std() + x.mean()
        elif self.opt["calib"] != "train":
            raise ValueError(f"calib: 'train' or 'noise', got {self.opt['calib']!r}")
        return x

    def compress(self, model: nn.Module) -> nn.Module:
        o = self.opt
        self.info = l2_compress(model, self.calibration(), float(o["ratio"]), bits=int(o["bits"]),
                                step_bits=int(o["step_bits"]), prune=float(o["prune"]), tau=float(o["tau"]),
                                lam=float(o["lam"]), steps=int(o["steps"]), lr=float(o["lr"]),
                                weight_lr=float(o["weight_lr"]), learn_weights=bool(o["learn_weights"]),
                                sample=None if o["sample"] is None else int(o["sample"]))
        return model

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        return {"est_bytes": self.info["est_bytes"], "budget_bytes": self.info["budget_bytes"]}


EXPERIMENT = compressbench("l2_posttraining_size_compression")
