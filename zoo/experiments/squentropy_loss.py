"""Squentropy (Hui, Belkin & Wright, ICML 2023) at small scale: CE vs rescaled square loss vs squentropy.

The paper's claims: squentropy is at least as accurate as cross-entropy and the rescaled square
loss, clearly better calibrated (lower ECE), and it trains with cross-entropy's own
hyper-parameters (it has none of its own). So every arm here uses one optimizer setting (the
config's SGD with momentum, weight decay, cosine schedule), chosen for cross-entropy; the square
loss takes Hui & Belkin's rescaling for few classes, ``k = M = 1`` (config ``square: {k, M}``).

Built on :mod:`zoo.experiments._classbench`: one job trains one MLP with one loss on one setting
(``digits``, ``mnist1d``) and seed, from the seed's initial weights and batch order. Arms differ
in the loss only. Metrics per setting (``<setting>_test_acc``, ``<setting>_test_ece``, ...) are
the harness's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from zoo.experiments._classbench import Method, classbench
from zoo.losses.squentropy import rescaled_square_loss, squentropy_loss

__all__ = ["EXPERIMENT", "ARMS"]

ARMS = ("ce", "square", "squentropy")


# looked up at call time, so a test can spy on the loss every step goes through
def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def _square(logits: torch.Tensor, y: torch.Tensor, k: float, M: float) -> torch.Tensor:
    return rescaled_square_loss(logits, y, k=k, M=M)


def _squentropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return squentropy_loss(logits, y)


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    sq = dict(cfg.get("square") or {"k": 1.0, "M": 1.0})
    k, M = float(sq["k"]), float(sq["M"])
    return {
        "ce": Method(loss=lambda z, y: _ce(z, y)),
        "square": Method(loss=lambda z, y: _square(z, y, k, M)),
        "squentropy": Method(loss=lambda z, y: _squentropy(z, y)),
    }


EXPERIMENT = classbench("squentropy_loss", _methods)
