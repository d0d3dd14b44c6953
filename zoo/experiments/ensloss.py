"""EnsLoss (Dai, ICML 2025) at small scale: random calibrated loss-derivatives vs fixed losses, over-parameterised MLPs.

The paper's claims: on 45 CIFAR2 pairs, PCam and 14 OpenML tabular sets, EnsLoss (a fresh
random convex-calibrated loss-derivative per mini-batch) beats every fixed loss it is compared
with (logistic/BCE, hinge, exponential, focal) in test accuracy, and it does so by reducing
overfitting, in the spirit of dropout.

Built on the family's harness (:mod:`zoo.experiments._classbench`): one job trains one wide MLP
with one loss on one seed and one setting (a binary task), from the seed's initial weights and
batch order, under the shared optimizer and schedule. The model has two outputs (the harness's
binary convention); every margin loss reads the score ``z = z_1 - z_0`` and the label
``y = 2 t - 1``, so the test prediction (``argmax``) is ``sign(z)``, the classifier the
margin losses calibrate.

Arms (the config's ``arms`` table: arm -> loss): ``logistic`` (BCE on ``z``), ``hinge``
(``max(0, 1 - y z)``), ``focal`` (binary focal loss, gamma 2) and ``ensloss``
(:func:`zoo.losses.ensloss.ensloss`, the author's default log-normal draw). EnsLoss draws from
torch's global generator, which the harness seeds per job after the model's initialisation.

Metrics: the harness's, and per setting ``<setting>_gap``: the train-test accuracy gap
(``train_acc - test_acc``, points), the overfitting the paper says EnsLoss reduces.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from zoo.experiments._classbench import Method, classbench, job_arms, settings_of
from zoo.harness import Table
from zoo.losses.ensloss import ensloss

__all__ = ["EXPERIMENT", "binary_logit", "arm_losses", "KINDS"]


def binary_logit(logits: torch.Tensor) -> torch.Tensor:
    """The score ``z = z_1 - z_0`` of a two-output model (``sigmoid(z)`` is softmax[1])."""
    return logits[..., 1] - logits[..., 0]


def _logistic(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(binary_logit(logits), y.to(logits.dtype))


def _hinge(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = (2.0 * y.to(logits.dtype) - 1.0) * binary_logit(logits)
    return F.relu(1.0 - s).mean()


def _focal(logits: torch.Tensor, y: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    z, t = binary_logit(logits), y.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    p = torch.sigmoid(z)
    p_t = t * p + (1 - t) * (1 - p)
    return ((1 - p_t) ** gamma * ce).mean()


def _ensloss(logits: torch.Tensor, y: torch.Tensor, lam: float = 0.0) -> torch.Tensor:
    # looked up at call time, so a test can spy on the loss every step goes through
    return ensloss(binary_logit(logits), y, lam=lam)


KINDS = ("logistic", "hinge", "focal", "ensloss")


def arm_losses(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The config's arm table: arm -> ``{loss: logistic|hinge|focal|ensloss, ...options}``."""
    return {str(a): dict(v) for a, v in cfg["arms"].items()}


def _dispatch(logits: torch.Tensor, y: torch.Tensor, kind: str, **kw: Any) -> torch.Tensor:
    fns = {"logistic": _logistic, "hinge": _hinge, "focal": _focal, "ensloss": _ensloss}
    return fns[kind](logits, y, **kw)


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    out = {}
    for arm, spec in arm_losses(cfg).items():
        kind = spec.pop("loss")
        if kind not in KINDS:
            raise ValueError(f"arm {arm!r}: unknown loss {kind!r}; use one of {list(KINDS)}")
        out[arm] = Method(loss=partial(_dispatch, kind=kind, **spec))
    return out


def _gap(cfg: dict[str, Any], table: Table, out: dict[str, dict[str, list[float]]]) -> None:
    """``<setting>_gap = train_acc - test_acc`` per method (``gap`` without settings)."""
    for a, (m, s) in job_arms(_methods(cfg), cfg).items():
        tr, te = table.metric(a, "train_acc"), table.metric(a, "test_acc")
        key = "gap" if settings_of(cfg) is None else f"{s}_gap"
        out.setdefault(m, {})[key] = [x - y for x, y in zip(tr, te)]


EXPERIMENT = classbench("ensloss", _methods, extra_derive=_gap)
