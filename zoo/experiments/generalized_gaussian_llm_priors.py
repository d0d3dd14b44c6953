"""Generalized-Gaussian init + shape penalty vs Gaussian init, then low-bit PTQ (Wu et al. 2025), on LeNet-300-100.

A :func:`~zoo.experiments._compressbench.compressbench` entry with one method, ``gg_prior``
(:class:`GGPrior`):

1. ``attach``: every Linear weight re-drawn from a generalized Gaussian of shape ``beta`` with the
   He variance ``xi / fan_in`` (:func:`zoo.quant.generalized_gaussian.gg_init_`; ``beta = 2`` is
   He-normal, the Gaussian arm). The redraw is the job's next draw from the seeded RNG, so every
   arm of a seed draws from the same random stream;
2. training (shared optimizer, lr, schedule, epochs and batch order) with cross-entropy plus
   ``lam`` times the shape penalty toward ``shape_beta`` (default ``beta``;
   :func:`~zoo.quant.generalized_gaussian.shape_penalty`; ``lam = 0`` turns it off);
3. ``compress``: the float model's test accuracy is recorded (``float_acc``), then every weight is
   quantised post-training to ``bits`` bits (symmetric, per output channel,
   :func:`zoo.quant.post_training_quantize`) and that integer-coded model is what is exported and
   measured (``bits: null`` exports the float model).

Extra metrics: ``float_acc``; ``ptq_drop`` (``float_acc`` minus the exported model's
``test_acc``); ``ptq<b>_drop`` for each of ``probe_bits`` (a copy of the float model quantised to
``b`` bits and exported, so it is an exported model's accuracy too); ``fitted_beta`` (the GG shape
of all weights pooled, from inverting ``rho``) and ``weight_kurtosis``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.compress import export
from zoo.experiments._compressbench import Batch, Method, _acc, compressbench, register
from zoo.quant import post_training_quantize
from zoo.quant.generalized_gaussian import empirical_rho, gg_init_, gg_rho, shape_penalty, weights_of

__all__ = ["GGPrior", "fit_beta", "EXPERIMENT"]


def fit_beta(w: torch.Tensor, lo: float = 0.1, hi: float = 10.0) -> float:
    """The GG shape whose ``rho`` equals the tensor's (bisection; ``rho`` is increasing in ``beta``)."""
    r = float(empirical_rho(w.detach().double()))
    if r <= gg_rho(lo):
        return lo
    if r >= gg_rho(hi):
        return hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if gg_rho(mid) < r:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@register("gg_prior")
class GGPrior(Method):
    defaults = {"beta": 2.0, "xi": 2.0, "lam": 0.0, "shape_beta": None, "bits": 4, "probe_bits": []}

    def attach(self, model: nn.Module) -> nn.Module:
        self._float_acc = float("nan")
        self._probe: dict[str, float] = {}
        return gg_init_(model, float(self.opt["beta"]), float(self.opt["xi"]))

    def _target(self) -> float:
        b = self.opt["shape_beta"]
        return float(self.opt["beta"] if b is None else b)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        ce = F.cross_entropy(model(batch.x), batch.y)
        lam = float(self.opt["lam"])
        if lam == 0.0:
            return ce
        return ce + lam * shape_penalty([m.weight for _, m in weights_of(model)], self._target())

    def compress(self, model: nn.Module) -> nn.Module:
        x, y = self.task.x_test, self.task.y_test
        self._float_acc = _acc(model, x, y)
        w = torch.cat([m.weight.detach().flatten() for _, m in weights_of(model)])
        self._beta_hat = fit_beta(w)
        z = (w - w.mean()) / w.std()
        self._kurt = float(z.pow(4).mean())
        for b in self.opt["probe_bits"]:
            q = post_training_quantize(copy.deepcopy(model), int(b)).eval()
            with torch.no_grad():
                self._probe[f"ptq{int(b)}_drop"] = self._float_acc - _acc(export(q), x, y)
        if self.opt["bits"] is None:
            return model
        return post_training_quantize(model, int(self.opt["bits"]))

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        test = _acc(exported, self.task.x_test, self.task.y_test)
        out = {"float_acc": self._float_acc, "ptq_drop": self._float_acc - test, "fitted_beta": self._beta_hat,
               "weight_kurtosis": self._kurt}
        out.update(self._probe)
        return out


EXPERIMENT = compressbench("generalized_gaussian_llm_priors")
