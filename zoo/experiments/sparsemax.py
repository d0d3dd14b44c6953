"""Sparsemax (Martins & Astudillo, ICML 2016) at small scale: the sparsemax loss for multi-class classification.

The paper proposes sparsemax, a sparse alternative to the softmax, and the sparsemax loss, its
analogue of the logistic loss; it reports multi-label results close to or better than the
softmax's and logistic losses', and sparse outputs. The shared harness is single-label, so this
experiment tests the ordinary multi-class use of the loss (the single-label case ``q = e_y`` of
the paper's Eq. 18): softmax cross-entropy against the sparsemax loss, on ``digits`` and
``mnist1d``, measuring accuracy and how sparse the predicted distribution is.

Built on :mod:`zoo.experiments._classbench`: one job trains one MLP with one loss on one setting
and seed, from the seed's initial weights and batch order, with the shared optimizer and schedule.
Besides the harness's metrics (whose ``test_ece``/``test_nll`` read the softmax of the logits)
each job reports, for the arm's *own* output map (softmax for ``ce``, sparsemax for
``sparsemax``): ``test_support`` (mean number of classes given non-zero probability on the test
split), ``test_own_ece`` (15-bin ECE of those probabilities, percent) and ``test_zero_true``
(percent of test examples whose true class gets probability exactly 0).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from zoo.experiments._classbench import RELIABILITY_BINS, LossObjective, Method, classbench
from zoo.losses.sparsemax import sparsemax, sparsemax_loss
from zoo.metrics.classification import ece

__all__ = ["EXPERIMENT", "ARMS"]

ARMS = ("ce", "sparsemax")


# looked up at call time, so a test can spy on the loss every step goes through
def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def _sparsemax(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return sparsemax_loss(logits, y)


class _OwnMap(LossObjective):
    """The arm's loss; its metrics read the arm's own probability map of the final logits."""

    def __init__(self, task: Any, cfg: dict[str, Any], model: torch.nn.Module,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 probs: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__(task, cfg, model, loss)
        self.probs = probs

    def metrics(self, model: torch.nn.Module) -> dict[str, float]:
        with torch.no_grad():
            p = self.probs(self.predict(model, self.task.x_test).double())
        y = self.task.y_test
        return {"test_support": float((p > 0).sum(1).double().mean()),
                "test_own_ece": ece(p, y, RELIABILITY_BINS),
                "test_zero_true": 100.0 * float((p.gather(1, y[:, None]) == 0).double().mean())}


def _arm(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
         probs: Callable[[torch.Tensor], torch.Tensor]) -> Method:
    return Method(objective=lambda task, cfg, model: _OwnMap(task, cfg, model, loss, probs))


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {
        "ce": _arm(lambda z, y: _ce(z, y), lambda z: z.softmax(-1)),
        "sparsemax": _arm(lambda z, y: _sparsemax(z, y), lambda z: sparsemax(z, -1)),
    }


EXPERIMENT = classbench("sparsemax", _methods)
