"""The Z-loss (de Brébisson & Vincent 2016) at small scale: top-1 accuracy against softmax CE and other spherical losses.

The paper's classification claim: the Z-loss clearly beats the other spherical-family losses
(the mean square error, the log-Taylor-softmax and the log-spherical-softmax) and is competitive
with the log-softmax. Arms here: softmax cross-entropy, the MSE (Hui & Belkin's square loss at
``k = M = 1``, :func:`zoo.losses.squentropy.rescaled_square_loss`), log-Taylor-softmax,
log-spherical-softmax (``eps`` from the config) and the Z-loss at the config's fixed ``a, b``.

Built on :mod:`zoo.experiments._classbench`: one job trains one MLP with one loss on one setting
(``digits``, a 100-class synthetic problem) and seed, from the seed's initial weights and batch
order, with one shared optimizer and schedule. Besides the harness's metrics each job reports
``test_top5`` (top-5 test accuracy). No arm's hyper-parameter is tuned (see the spec).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from zoo.experiments._classbench import LossObjective, Method, classbench
from zoo.losses.spherical_softmax import log_spherical_softmax_loss, log_taylor_softmax_loss
from zoo.losses.squentropy import rescaled_square_loss
from zoo.losses.z_loss import z_loss

__all__ = ["EXPERIMENT"]


# looked up at call time, so a test can spy on the loss every step goes through
def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def _mse(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return rescaled_square_loss(logits, y, k=1.0, M=1.0)


def _taylor(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return log_taylor_softmax_loss(logits, y)


def _spherical(logits: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    return log_spherical_softmax_loss(logits, y, eps=eps)


def _zloss(logits: torch.Tensor, y: torch.Tensor, a: float, b: float) -> torch.Tensor:
    return z_loss(logits, y, a=a, b=b)


class _TopK(LossObjective):
    """A loss on logits, plus the final model's top-5 test accuracy (the paper's ranking score)."""

    def metrics(self, model: torch.nn.Module) -> dict[str, float]:
        with torch.no_grad():
            logits = self.predict(model, self.task.x_test)
        k = min(5, logits.shape[1])
        hit = (logits.topk(k, dim=1).indices == self.task.y_test[:, None]).any(1)
        return {"test_top5": 100.0 * float(hit.double().mean())}


def _arm(loss: Any) -> Method:
    return Method(objective=lambda task, cfg, model: _TopK(task, cfg, model, loss))


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    zc = dict(cfg.get("zloss") or {"a": 1.0, "b": 3.0})
    a, b = float(zc["a"]), float(zc["b"])
    eps = float(cfg.get("spherical_eps", 0.01))
    return {
        "ce": _arm(lambda z, y: _ce(z, y)),
        "mse": _arm(lambda z, y: _mse(z, y)),
        "log_taylor": _arm(lambda z, y: _taylor(z, y)),
        "log_spherical": _arm(lambda z, y: _spherical(z, y, eps)),
        "zloss": _arm(lambda z, y: _zloss(z, y, a, b)),
    }


EXPERIMENT = classbench("z_loss_spherical_classification", _methods)
