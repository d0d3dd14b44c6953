"""Weight compander (Cakaj et al., IJCNN 2023) at small scale: a reparametrised MLP vs the plain one.

The paper's claim: adding weight compander (WC) to a network trained with standard
regularisation (weight decay) improves its test accuracy; after training, its weights are spread
away from zero (fewer near-zero weights) and their magnitudes are bounded.

Built on the classification harness (:mod:`zoo.experiments._classbench`): each arm trains the
seed's shared MLP with cross-entropy, the shared SGD-with-momentum optimizer (weight decay
included), cosine schedule, epochs and batches. The WC arms differ in one thing only: a
``Method(model=...)`` transform that reparametrises every Linear weight with
:func:`zoo.regularizers.weight_compander.apply_weight_compander` *after* the shared
initialisation, with ``v = f^{-1}(w0)`` so the initial function is the plain arm's. ``wc`` keeps
the compander's ``alpha, beta`` fixed (the library's learnable variant is not an arm: learned with the
shared learning rate it was unstable in a pilot).

Weight-distribution metrics (every arm, from the weights the layers use, :class:`WeightStats`):
``near_zero_pct`` (percent of weights whose magnitude is below 0.1 of their layer's initial
standard deviation: the same thresholds for every arm of a seed, since the init is shared) and
``max_w_ratio`` (largest final |w| over the largest initial |w|, averaged over layers).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.experiments._classbench import Method, Objective, classbench
from zoo.regularizers import weight_compander as wc
from zoo.workloads.classification import Task

__all__ = ["EXPERIMENT", "WeightStats", "arms_of"]

NEAR_ZERO = 0.1  # threshold, in units of the layer's initial weight standard deviation


class WeightStats(Objective):
    """Cross-entropy (the default objective) plus the final weight-distribution metrics."""

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module) -> None:
        super().__init__(task, cfg, model)
        # The model is the arm's, transformed: its effective weights still equal the shared init.
        init = list(wc.effective_weights(model))
        self.init_std = [float(w.std()) for w in init]
        self.init_max = [float(w.abs().max()) for w in init]

    def metrics(self, model: nn.Module) -> dict[str, float]:
        ws = list(wc.effective_weights(model))
        near = sum(int((w.abs() < NEAR_ZERO * s).sum()) for w, s in zip(ws, self.init_std, strict=True))
        total = sum(w.numel() for w in ws)
        ratio = sum(float(w.abs().max()) / m for w, m in zip(ws, self.init_max, strict=True)) / len(ws)
        out = {"near_zero_pct": 100.0 * near / total, "max_w_ratio": ratio}
        comps = wc.compander_layers(model)
        if comps:
            out["wc_alpha"] = sum(float(c.alpha.detach()) for c in comps) / len(comps)
            out["wc_beta"] = sum(float(c.beta.detach()) for c in comps) / len(comps)
            out["wc_init_clipped"] = float(sum(c.clipped for c in comps))
        return out


def arms_of(cfg: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """The config's arm table: arm -> compander options (``None``: the plain model)."""
    return {str(k): (None if v is None else dict(v)) for k, v in cfg["arms"].items()}


def _reparametrise(model: nn.Module, task: Task, cfg: dict[str, Any], opts: dict[str, Any]) -> nn.Module:
    # looked up at call time, so a test can spy on it
    return wc.apply_weight_compander(model, alpha=float(opts["alpha"]), beta=float(opts["beta"]),
                                     learnable=bool(opts.get("learnable", False)))


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    out = {}
    for arm, opts in arms_of(cfg).items():
        model = None if opts is None else (lambda m, t, c, o=opts: _reparametrise(m, t, c, o))
        out[arm] = Method(objective=WeightStats, model=model)
    return out


EXPERIMENT = classbench("weight_compander", _methods)
