"""Learning to reject with a fixed predictor (Mohri et al., ICLR 2024) at small scale: a learned rejector vs max-probability thresholding.

The paper's claim: for a fixed predictor, a rejector trained with its H-consistent surrogate
gives much more coverage at a given error rate than thresholding the predictor's confidence
(MaxProb) or a rejector trained with cross-entropy: about 25% more coverage when halving the
error rate on decontextualization, within about 3% of the theoretical limit.

One job of the family's harness (:mod:`zoo.experiments._classbench`) runs the whole protocol on
one seed, so every comparison is paired by construction: the :class:`FixedPredictorRejection`
objective

1. trains the predictor (the shared MLP) with cross-entropy for ``predictor_epochs`` epochs;
2. then **fixes** it (``requires_grad_(False)``: no gradient, so the shared optimizer leaves its
   weights alone, momentum included) and, for the remaining epochs, trains two rejectors of the
   same architecture and initialisation on labels ``a = +1`` where the fixed predictor is right,
   ``-1`` where it is wrong, on the *validation* split (held-out data, where the predictor's
   mistakes look like its test mistakes; its training accuracy is near 100%): one with the
   paper's surrogate (:func:`zoo.losses.fixed_predictor_rejection.rejection_surrogate`), one
   with binary cross-entropy (the paper's cross-entropy baseline). A rejector sees the input and
   the fixed predictor's class probabilities, ``r(x, f(x))``;
3. measures, on the test split, the coverage at a selective risk of ``risk_fraction`` times the
   fixed predictor's test error (half, as in the paper) for each score: MaxProb (the largest
   softmax probability), the surrogate rejector and the cross-entropy rejector; and the
   theoretical limit (a perfect rejector: coverage ``(1 - e) / (1 - risk)``).

Mini-batches of the rejection phase are validation rows ``idx mod n_val`` of the harness's
(seeded) training batches, so they are deterministic and differ from epoch to epoch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.experiments._classbench import Batch, Method, Objective, classbench
from zoo.losses.fixed_predictor_rejection import rejection_surrogate
from zoo.metrics.classification import coverage_at_risk
from zoo.workloads.classification import UNLABELLED, Task

__all__ = ["EXPERIMENT", "FixedPredictorRejection", "Rejector", "REJECTORS"]

REJECTORS = ("surrogate", "logistic")


class Rejector(nn.Module):
    """``r(x, f(x))``: an MLP on the flattened input and the fixed predictor's class probabilities."""

    def __init__(self, features: int, classes: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features + classes, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x.flatten(1), probs], dim=1)).squeeze(1)


class FixedPredictorRejection(Objective):
    """Predictor phase (cross-entropy), then rejectors for the fixed predictor (see the module docstring)."""

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module) -> None:
        super().__init__(task, cfg, model)
        r = dict(cfg["rejector"])
        self.predictor_epochs = int(cfg["predictor_epochs"])
        if not 0 < self.predictor_epochs < int(cfg["epochs"]):
            raise ValueError("predictor_epochs must leave at least one epoch for the rejectors")
        if task.x_val.shape[0] == 0:
            raise ValueError("the rejectors train on the validation split: set val_fraction > 0")
        self.c, self.alpha = float(r["c"]), float(r["alpha"])
        self.risk_fraction = float(cfg.get("risk_fraction", 0.5))
        features = int(torch.tensor(task.input_shape).prod())
        hidden = int(r.get("hidden", 64))
        # Both rejectors start from the same weights: the job's next draws after the model's.
        first = Rejector(features, task.num_classes, hidden)
        self.rejectors = nn.ModuleDict({"surrogate": first, "logistic": Rejector(features, task.num_classes, hidden)})
        self.rejectors["logistic"].load_state_dict(first.state_dict())
        self.fixed = False

    def modules(self) -> list[nn.Module]:
        return [self.rejectors]

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        if epoch == self.predictor_epochs:
            for p in model.parameters():  # the predictor is fixed from here on
                p.requires_grad_(False)
            self.fixed = True

    @torch.no_grad()
    def _labels(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        was = model.training
        model.eval()
        probs = model(x).softmax(-1)
        model.train(was)
        return probs, (probs.argmax(-1) == y).long()

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        if batch.epoch <= self.predictor_epochs:
            return F.cross_entropy(model(batch.x), batch.y, ignore_index=UNLABELLED)
        n_val = self.task.x_val.shape[0]
        j = batch.idx.remainder(n_val)
        xv, yv = self.task.x_val[j], self.task.y_val[j]
        probs, correct = self._labels(model, xv, yv)
        r_s = self.rejectors["surrogate"](xv, probs)
        r_l = self.rejectors["logistic"](xv, probs)
        return (rejection_surrogate(r_s, correct, c=self.c, alpha=self.alpha)
                + F.binary_cross_entropy_with_logits(r_l, correct.to(r_l.dtype)))

    @torch.no_grad()
    def scores(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each method's acceptance score on ``x`` (higher: accept first)."""
        probs = model(x).softmax(-1)
        out = {"maxprob": probs.max(-1).values}
        for name in REJECTORS:
            out[name] = self.rejectors[name](x, probs)
        return out

    @torch.no_grad()
    def metrics(self, model: nn.Module) -> dict[str, float]:
        x, y = self.task.x_test, self.task.y_test
        correct = model(x).argmax(-1) == y
        err = float((~correct).double().mean())
        risk = self.risk_fraction * err
        out = {"test_err": 100.0 * err, "target_risk": 100.0 * risk,
               "cov_oracle": 100.0 * min(1.0, (1.0 - err) / (1.0 - risk))}
        for name, s in self.scores(model, x).items():
            out[f"cov_{name}"] = coverage_at_risk(s, correct, risk)
        # the surrogate's built-in threshold: what r > 0 accepts
        acc = self.scores(model, x)["surrogate"] > 0
        out["accept_at0_surrogate"] = 100.0 * float(acc.double().mean())
        out["risk_at0_surrogate"] = 100.0 * float((~correct[acc]).double().mean()) if bool(acc.any()) else 0.0
        return out


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {"reject": Method(objective=FixedPredictorRejection)}


EXPERIMENT = classbench("learning_to_reject_fixed_predictor", _methods)
