"""PolyLoss (Leng et al., ICLR 2022) at small scale: Poly-1 vs cross-entropy on MNIST-1D.

The paper's classification claim: on ImageNet, Poly-1 cross-entropy with a positive leading
perturbation (``epsilon = 2``) beats plain cross-entropy (+0.4 to +0.6 top-1 points), and the
sign of the best ``epsilon`` depends on the task (``-1`` on COCO).

Built on the family's classification harness (:mod:`zoo.experiments._classbench`): one job
trains one MLP with one loss (an arm: an ``epsilon`` of the config's arm table) on one seed, from
the seed's initial weights and batch order, with the shared SGD-with-momentum optimizer and cosine
schedule. Arms differ in the loss only: :func:`poly1_cross_entropy` at the arm's ``epsilon``; the
cross-entropy arm is Poly-1 at ``epsilon = 0``, which is ``F.cross_entropy`` bit for bit.

Metrics per arm and seed (the harness's): final test accuracy, NLL, ECE, and the mean probability
of the true class (``P_t``) on the training and the test set; plots: test accuracy per epoch and
the reliability diagram.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from zoo.experiments._classbench import Method, classbench
from zoo.losses.polyloss import poly1_cross_entropy

__all__ = ["EXPERIMENT", "arm_epsilons"]


def arm_epsilons(cfg: dict[str, Any]) -> dict[str, float]:
    """The config's arm table: arm name -> Poly-1 ``epsilon`` (0 is cross-entropy)."""
    return {str(k): float(v) for k, v in cfg["arms"].items()}


def _poly1(logits: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
    # looked up at call time, so a test can spy on the loss every step goes through
    return poly1_cross_entropy(logits, y, epsilon=epsilon)


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {arm: Method(loss=partial(_poly1, epsilon=eps)) for arm, eps in arm_epsilons(cfg).items()}


EXPERIMENT = classbench("polyloss", _methods)
