"""SAF vs SAM vs SGD: accuracy, sharpness (top Hessian eigenvalue) and wall time per step.

Arms (SGD with momentum 0.9 and the shared cosine schedule at the family's tuned ``sgdm_cosine``
learning rate, the workload's epochs; the shared data, initialisation and batch order per seed):

* ``sgd``: the tuned baseline (cross-entropy);
* ``sam``: :class:`zoo.optim.sam.SAM` around the same SGD, ``rho = 0.05`` (SAM's default);
* ``saf``: the same SGD on SAF's objective, :class:`zoo.optim.saf.SAFLoss` (cross-entropy plus
  ``lam`` times the KL to each example's outputs recorded ``lag`` epochs earlier, from epoch
  ``start_epoch + 1`` on) at the authors' README values ``lam = 0.3``, ``tau = 5`` and a
  per-workload ``lag`` / ``start_epoch`` (``cfg["saf"]``) scaled from the README's advice
  (``E~`` of 2-3, ``E_start`` at about 30% of the epochs).

Each job reports ``lam_max`` / ``log10_lam_max``, ``step_ms`` / ``log10_step_ms`` (median wall
time of one optimizer step, forward and backward included, timed inside the job) and
``step_cpu_ms`` / ``log10_step_cpu_ms`` (the median CPU time of the job's thread per step, which
other processes on a shared CPU do not inflate; :mod:`zoo.experiments._sharpness`).
"""

from __future__ import annotations

import math
from typing import Any

from zoo.experiments._optbench import Method, optbench
from zoo.experiments._sharpness import arm
from zoo.experiments.sharpness_aware_minimization import sam, sgd
from zoo.harness import Table

__all__ = ["EXPERIMENT"]


class _SAFArm:
    """``Method(run=...)`` for SAF with the workload's ``cfg["saf"][workload]`` schedule (picklable)."""

    def __call__(self, cfg: dict[str, Any], w: Any, data: Any, seed: int, epochs: int, device: str) -> Any:
        opts = {"lam": float(cfg["saf_lam"]), "temperature": float(cfg["saf_temperature"]),
                **{k: int(v) for k, v in cfg["saf"][w.name].items()}}
        return arm(sgd(), saf=opts)(cfg, w, data, seed, epochs, device)


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {
        "sgd": Method(run=arm(sgd())),
        "sam": Method(run=arm(sam(float(cfg["rho"])))),
        "saf": Method(run=_SAFArm()),
    }


def _derive(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    """``<workload>_log10_step_ms`` / ``_log10_step_cpu_ms`` for every arm (a ratio of step times is a difference)."""
    for row in derived.values():
        for k in [k for k in row if k.endswith(("_step_ms", "_step_cpu_ms"))]:
            row[k.replace("_step_", "_log10_step_")] = [math.log10(v) for v in row[k]]


EXPERIMENT = optbench("sharpness_aware_training_free", _methods, extra_derive=_derive)
