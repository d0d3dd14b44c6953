"""OASIS (Jahani et al., ICLR 2022) at small scale: no learning rate vs Adam and AdaHessian at their defaults.

Three workloads of the shared suite (:mod:`zoo.workloads.optim`): ``lstsq`` (convex, known
optimum, metric ``subopt`` = log10(F - F*)), ``digits_logreg`` (convex) and ``digits_mlp``
(non-convex), with their batch sizes, epochs, initialisations and batch orders. Arms:

* ``oasis``: :class:`zoo.optim.oasis.OASIS` at our defaults (``eta0`` 1e-3, ``beta2`` 0.99,
  ``alpha`` 1e-5, exact Hessian-vector products); ``oasis_alpha1e_3``: the same with the
  truncation ``alpha = 1e-3`` (a sensitivity arm, no claim uses it);
* ``adahessian``: ``pytorch_optimizer.AdaHessian`` (pytorch-optimizer 4.1.0, the test extra) at
  its defaults (lr 0.1, betas (0.9, 0.999), one Rademacher probe per step);
* ``adam_default``: Adam at lr 1e-3 (torch's default); ``adam_tuned``: Adam at the family's tuned
  learning rate (``reproductions/_baselines/optim/tuned.json``, chosen on validation).

The Hessian-based arms train on :func:`zoo.optim.oasis.create_graph_loss` of the workload's loss
(cross-entropy, or MSE for the regression), so that the shared loop's closure leaves gradients
with their graph; the loss values are the workload's. ``grad_evals`` counts closure calls: OASIS
takes two per step (the current and the previous weights on the same batch) plus one
Hessian-vector product, AdaHessian one plus one product, Adam one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.experiments._optbench import Method, optbench, tuned
from zoo.optim.oasis import OASIS, create_graph_loss

__all__ = ["EXPERIMENT", "workload_loss", "hessian_loss"]

REFERENCE_HINT = ('the adahessian arm runs pytorch_optimizer.AdaHessian (pytorch-optimizer==4.1.0), which is not '
                  'installed; install the test extra: pip install -e ".[test]"')


def workload_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The workload's training loss: cross-entropy for class labels, MSE for a regression target."""
    out = model(x)
    if y.dtype.is_floating_point:
        return torch.nn.functional.mse_loss(out, y)
    return torch.nn.functional.cross_entropy(out, y)


hessian_loss = create_graph_loss(workload_loss)


def _adahessian(params: list[nn.Parameter]) -> torch.optim.Optimizer:
    try:
        from pytorch_optimizer import AdaHessian
    except ImportError as e:  # pragma: no cover - the test extra pins it
        raise ImportError(REFERENCE_HINT) from e
    return AdaHessian(params)


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {
        "oasis": Method(build=lambda p, steps, lr, cfg, w: (OASIS(p), None), loss=hessian_loss),
        "oasis_alpha1e_3": Method(build=lambda p, steps, lr, cfg, w: (OASIS(p, alpha=1e-3), None), loss=hessian_loss),
        "adahessian": Method(build=lambda p, steps, lr, cfg, w: (_adahessian(p), None), loss=hessian_loss),
        "adam_default": Method(build=lambda p, steps, lr, cfg, w: (torch.optim.Adam(p, lr=1e-3), None)),
        "adam_tuned": tuned("adam", lambda p, steps, lr, cfg, w: (torch.optim.Adam(p, lr=lr), None)),
    }


EXPERIMENT = optbench("doubly_adaptive_scaled_optimizer", _methods)
