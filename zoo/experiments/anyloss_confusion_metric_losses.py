"""AnyLoss (Han et al., KDD 2024) at small scale: AnyLoss-F1 vs BCE and MSE on imbalanced and balanced binary tasks.

The paper's claims: AnyLoss turns a confusion-matrix metric into a loss that optimises it
directly; against MSE and BCE it wins most often on 102 datasets, and it does especially well on
imbalanced data (its F1 gains in the authors' extra tables: +1.5 points for a ResNet on MNIST,
+0.5 to +1.7 points on Titanic).

Built on the family's harness (:mod:`zoo.experiments._classbench`): one job trains one MLP with
one loss on one seed and one setting (a one-vs-rest task: digits ``positive`` classes against the
rest, positives subsampled to ``pos_fraction``), from the seed's initial weights and batch order,
under the shared optimizer and schedule. The model has two outputs (the harness's binary
convention); every binary loss here reads the logit ``z = z_1 - z_0``, whose sigmoid is the
softmax probability of class 1, so "BCE" is exactly cross-entropy on the two logits and the
test prediction (``argmax``) is ``sigmoid(z) > 1/2``, the threshold AnyLoss's amplification is
centred on.

Arms (the config's ``arms`` table: arm -> loss): ``bce`` (binary cross-entropy), ``mse`` (squared
error of ``sigmoid(z)``, the paper's other baseline) and ``anyloss_f1`` (AnyLoss-F1, L = 73).
Metric of the claims: ``test_f1_pos``, the F1 of the positive class on the test split.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from zoo.experiments._classbench import Method, classbench
from zoo.losses.anyloss import anyloss

__all__ = ["EXPERIMENT", "LOSSES", "binary_logit", "arm_losses"]


def binary_logit(logits: torch.Tensor) -> torch.Tensor:
    """The positive-class logit of a two-output model, ``z_1 - z_0`` (``sigmoid`` of it is softmax[1])."""
    return logits[..., 1] - logits[..., 0]


def _bce(logits: torch.Tensor, y: torch.Tensor, **_: Any) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(binary_logit(logits), y.to(logits.dtype))


def _mse(logits: torch.Tensor, y: torch.Tensor, **_: Any) -> torch.Tensor:
    return F.mse_loss(torch.sigmoid(binary_logit(logits)), y.to(logits.dtype))


def _anyloss(logits: torch.Tensor, y: torch.Tensor, metric: str = "f1", beta: float = 1.0, L: float = 73.0) -> torch.Tensor:
    # looked up at call time, so a test can spy on the loss every step goes through
    return anyloss(binary_logit(logits), y, metric=metric, beta=beta, L=L)


LOSSES = {"bce": _bce, "mse": _mse, "anyloss": _anyloss}
"""Loss kinds an arm may name."""


def arm_losses(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The config's arm table: arm -> ``{loss: bce|mse|anyloss, metric, beta, L}``."""
    return {str(a): dict(v) for a, v in cfg["arms"].items()}


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    out = {}
    for arm, spec in arm_losses(cfg).items():
        kind = spec.pop("loss")
        if kind not in LOSSES:
            raise ValueError(f"arm {arm!r}: unknown loss {kind!r}; use one of {list(LOSSES)}")
        out[arm] = Method(loss=partial(_dispatch, kind=kind, **spec))
    return out


def _dispatch(logits: torch.Tensor, y: torch.Tensor, kind: str, **kw: Any) -> torch.Tensor:
    return {"bce": _bce, "mse": _mse, "anyloss": _anyloss}[kind](logits, y, **kw)


EXPERIMENT = classbench("anyloss_confusion_metric_losses", _methods)
