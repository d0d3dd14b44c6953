"""M-FAC (Frantar, Kurtic, Alistarh, NeurIPS 2021) at small scale, on the shared optimizer benchmark.

Two parts, both on the optimizer family's workload suite (:mod:`zoo.workloads.optim`):

1. **The inverse-Fisher-vector product is exact** (the dynamic algorithm's correctness): the arm
   ``ihvp`` (``Method(run=...)``, workload ``digits_logreg``, 650 weights) trains the workload
   with :class:`MFAC` (window ``ihvp_ngrads``, ``mfac_damp``, learning rate ``ihvp_lr``) for
   ``ihvp_epochs`` epochs of the shared loop, long enough for the ring buffer to wrap, once in
   float64 and once in float32. With the window ``G`` the optimizer holds at the end, it compares
   the optimizer's matrix-free ``F^-1 v`` (for a random ``v`` and for the last gradient) with the
   explicit ``(lambda I + G^T G / m)^-1 v`` (the ``650 x 650`` matrix formed and solved in
   float64), and the paper's row-by-row recursion (:func:`dynamic_ihvp_reference`) with the same
   oracle. Metrics: ``ihvp_log10_relerr_f64``, ``ihvp_log10_relerr_f32``,
   ``ihvp_log10_relerr_reference`` (the larger of the two vectors' relative errors, log10),
   ``ihvp_steps``.
2. **M-FAC-preconditioned SGD against tuned SGD with momentum and Adam** on ``compare_workloads``:
   ``mfac`` is :class:`MFAC` (window ``mfac_ngrads``, dampening ``mfac_damp``, no momentum, no
   weight decay) under the cosine schedule every arm shares, its learning rate picked per
   workload from ``mfac_lrs`` by mean validation accuracy; ``sgdm_cosine`` and ``adam_cosine``
   are the family's tuned baselines (``reproductions/_baselines/optim/tuned.json``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch

from zoo.experiments._optbench import Method, optbench, tuned
from zoo.experiments._optim_tuning import build_baseline
from zoo.optim.mfac import MFAC, dynamic_ihvp_reference, explicit_ihvp
from zoo.training import TensorData
from zoo.workloads.optim import Workload, run

__all__ = ["EXPERIMENT", "ihvp_check", "build_mfac"]


def build_mfac(params: list[torch.nn.Parameter], steps: int, lr: float | None, cfg: dict[str, Any],
               w: Workload) -> tuple[torch.optim.Optimizer, Any]:
    """M-FAC at ``lr`` with the config's window and dampening, cosine-annealed over the run."""
    opt = MFAC(params, lr=float(lr), ngrads=int(cfg["mfac_ngrads"]), damp=float(cfg["mfac_damp"]))  # type: ignore[arg-type]
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)


def _as(data: TensorData, dtype: torch.dtype) -> TensorData:
    assert data.x_val is not None
    return TensorData(data.x_train.to(dtype), data.y_train, data.x_test.to(dtype), data.y_test, data.num_classes,
                      data.name, data.x_val.to(dtype), data.y_val)


def _log_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    err = float((a.double() - b.double()).norm() / b.double().norm())
    return math.log10(max(err, 1e-300)) if math.isfinite(err) else 30.0


def ihvp_check(cfg: dict[str, Any], w: Workload, data: TensorData, seed: int, epochs: int,
               device: str) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Train with M-FAC, then compare its inverse-Fisher products with the explicit inverse."""
    m, damp = int(cfg["ihvp_ngrads"]), float(cfg["mfac_damp"])
    metrics: dict[str, float] = {}
    for dtype, tag in ((torch.float64, "f64"), (torch.float32, "f32")):
        model = w.model(data).to(device=device, dtype=dtype)
        made: list[MFAC] = []

        def factory(params: list[torch.nn.Parameter], steps: int) -> tuple[torch.optim.Optimizer, Any]:
            made.append(MFAC(params, lr=float(cfg["ihvp_lr"]), ngrads=m, damp=damp))
            return made[0], None

        run(w, _as(data, dtype), factory, seed, epochs=int(cfg["ihvp_epochs"]), device=device, model=model)
        opt = made[0]
        params = [p for group in opt.param_groups for p in group["params"]]
        grads = torch.cat([opt.state[p]["window"] for p in params], 1)  # G, m x d
        gen = torch.Generator().manual_seed(seed)
        probes = [torch.randn(grads.shape[1], generator=gen, dtype=torch.float64).to(device),
                  torch.cat([p.grad.reshape(-1) for p in params]).double()]  # a random v, the last gradient
        errs, ref_errs = [], []
        for v in probes:
            xs = [t.reshape(p.shape).to(dtype) for t, p in zip(torch.split(v, [p.numel() for p in params]), params)]
            ours = torch.cat([t.reshape(-1) for t in opt.inverse_fisher_product(xs)])
            oracle = explicit_ihvp(grads, v.to(dtype), damp)
            errs.append(_log_rel(ours, oracle))
            if dtype == torch.float64:
                ref_errs.append(_log_rel(dynamic_ihvp_reference(grads, v, damp), oracle))
        metrics[f"ihvp_log10_relerr_{tag}"] = max(errs)
        if ref_errs:
            metrics["ihvp_log10_relerr_reference"] = max(ref_errs)
        metrics["ihvp_steps"] = float(int(cfg["ihvp_epochs"]) * -(-data.n_train // w.batch_size))
    return metrics, {}


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    compare = tuple(cfg["compare_workloads"])
    return {
        "mfac": Method(build=build_mfac, lrs=tuple(float(v) for v in cfg["mfac_lrs"]), workloads=compare),
        "sgdm_cosine": replace(tuned("sgdm_cosine", lambda p, steps, lr, c, w: build_baseline("sgdm_cosine", p, steps, float(lr))),
                               workloads=compare),
        "adam_cosine": replace(tuned("adam_cosine", lambda p, steps, lr, c, w: build_baseline("adam_cosine", p, steps, float(lr))),
                               workloads=compare),
        "ihvp": Method(run=ihvp_check, workloads=(str(cfg["ihvp_workload"]),)),
    }


EXPERIMENT = optbench("mfac_matrix_free_second_order", _methods)

