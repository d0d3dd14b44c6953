"""What the noisy-label loss entries share on the classification harness: loss arms by name, headline metrics.

The robust-loss entries (APL, LDR) declare their arms as a table ``arm -> {loss: <name>, <kwargs>}``
(:data:`LOSS_NAMES` lists the names); :func:`loss_methods` turns it into harness methods, each a
plain ``loss(logits, y)``. The loss function is looked up in this module *at call time*, so a test
can spy on the exact function every step of an arm goes through (``monkeypatch.setattr`` on this
module).

:func:`headline_derive` copies one setting's ``test_acc`` and ``test_ece`` to unprefixed
``test_acc`` / ``test_ece`` for each method, the numbers a family comparison table reads.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from zoo.experiments._classbench import Method, settings_of
from zoo.harness import Table
from zoo.losses.active_passive import active_passive_loss, mean_absolute_error  # noqa: F401 (looked up by name)
from zoo.losses.generalized_cross_entropy import generalized_cross_entropy  # noqa: F401
from zoo.losses.normalized_losses import normalized_cross_entropy, normalized_focal_loss  # noqa: F401
from zoo.losses.symmetric_cross_entropy import symmetric_cross_entropy  # noqa: F401
from zoo.workloads.classification import UNLABELLED

__all__ = ["LOSS_NAMES", "loss_methods", "arm_table", "headline_derive", "cross_entropy"]


def cross_entropy(input: torch.Tensor, target: torch.Tensor, **kw: Any) -> torch.Tensor:
    """``F.cross_entropy`` (named here so that a test can spy on the baseline too)."""
    return F.cross_entropy(input, target, ignore_index=UNLABELLED, **kw)


# arm-table name -> (function name in this module, fixed keyword arguments)
LOSS_NAMES: dict[str, tuple[str, dict[str, Any]]] = {
    "ce": ("cross_entropy", {}),
    "gce": ("generalized_cross_entropy", {}),
    "sce": ("symmetric_cross_entropy", {}),
    "mae": ("mean_absolute_error", {}),
    "nce": ("normalized_cross_entropy", {}),
    "nfl": ("normalized_focal_loss", {}),
    "nce_rce": ("active_passive_loss", {"active": "nce", "passive": "rce"}),
    "nce_mae": ("active_passive_loss", {"active": "nce", "passive": "mae"}),
    "nfl_rce": ("active_passive_loss", {"active": "nfl", "passive": "rce"}),
    "nfl_mae": ("active_passive_loss", {"active": "nfl", "passive": "mae"}),
}


def arm_table(cfg: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """The config's arms: arm -> (loss name, keyword arguments)."""
    out = {}
    for arm, spec in cfg["arms"].items():
        spec = dict(spec)
        name = str(spec.pop("loss"))
        out[str(arm)] = (name, spec)
    return out


def _call(logits: torch.Tensor, y: torch.Tensor, name: str, kw: dict[str, Any]) -> torch.Tensor:
    fn_name, fixed = LOSS_NAMES[name]
    fn = getattr(sys.modules[__name__], fn_name)  # at call time: a test may spy on it
    return fn(logits, y, **fixed, **kw)


def loss_method(name: str, kw: dict[str, Any]) -> Method:
    if name not in LOSS_NAMES:
        raise ValueError(f"unknown loss {name!r}; use one of {sorted(LOSS_NAMES)}")
    return Method(loss=partial(_call, name=name, kw=dict(kw)))


def loss_methods(cfg: dict[str, Any]) -> dict[str, Method]:
    """One harness method per arm of the config's arm table (losses on logits)."""
    return {arm: loss_method(name, kw) for arm, (name, kw) in arm_table(cfg).items()}


def headline_derive(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    """``test_acc`` / ``test_ece`` of every method in the config's ``headline`` setting, unprefixed."""
    head = cfg.get("headline")
    if head is None or settings_of(cfg) is None or head not in cfg["settings"]:
        return
    for m, metrics in derived.items():
        for k in ("test_acc", "test_ece"):
            if f"{head}_{k}" in metrics:
                metrics[k] = list(metrics[f"{head}_{k}"])
