"""The registry of every zoo loss, which drives the shared loss tests (``tests/losses/test_registry.py``).

Each loss module declares ``LOSS_CASES``: one :class:`LossCase` per loss it exports, saying what
input layout it takes and which of torch's loss conventions it supports; :func:`loss_cases`
collects them from every module of :mod:`zoo.losses`, so adding a loss file adds it to the tests.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

__all__ = ["LossCase", "loss_cases", "loss_modules"]


@dataclass(frozen=True)
class LossCase:
    """One loss as the shared tests exercise it.

    ``target``: ``"index"`` (``(N, C)`` logits, class indices), ``"binary"`` (``(N,)`` logits,
    0/1 targets) or ``"multilabel"`` (``(N, C)`` logits, multi-hot float targets).
    ``decomposable``: a per-element loss (``reduction="none"`` keeps the target's shape); batch-level
    losses such as F-beta surrogates are not. ``smooth``: differentiable everywhere on random
    inputs (``gradcheck`` runs), false for piecewise losses, which get a finite-difference check
    away from their kinks instead.
    """

    name: str
    module: Callable[..., nn.Module]
    kwargs: dict[str, Any] = field(default_factory=dict)
    function: Callable[..., Any] | None = None  # the functional form, same arguments after (input, target)
    target: str = "index"
    decomposable: bool = True
    weight: bool = True
    ignore_index: bool = True
    label_smoothing: bool = False
    masked_logits: bool = True
    spatial: bool = True  # accepts (N, C, d1, ...) inputs
    smooth: bool = True
    min_classes: int = 2


def loss_modules() -> list[str]:
    """Every loss module of :mod:`zoo.losses` (the private helpers and this registry excluded)."""
    import zoo.losses as pkg

    return sorted(f"zoo.losses.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)
                  if not m.name.startswith("_") and m.name != "registry")


def loss_cases() -> list[LossCase]:
    out: list[LossCase] = []
    for name in loss_modules():
        out.extend(getattr(importlib.import_module(name), "LOSS_CASES", ()))
    return out
