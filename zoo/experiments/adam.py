"""Adam (Kingma & Ba, ICLR 2015) against the optimizers it was compared with, with torch's classes.

Kingma & Ba compare Adam with SGD with Nesterov momentum, AdaGrad and RMSProp, each at the best
setting of a dense hyper-parameter grid, on the *training* objective (Fig. 1: logistic regression
on MNIST, where Adam converges like SGD-Nesterov and faster than AdaGrad; Fig. 2: an MLP, where
Adam is fastest). Adam's step ``alpha m_hat / (sqrt(v_hat) + eps)`` is invariant to rescaling the
gradient (Sec. 2.1: ``c g`` rescales ``m_hat`` by ``c`` and ``v_hat`` by ``c^2``), exactly so when
``eps`` is rescaled too; Sec. 6.4 (Fig. 4) shows that without the bias correction, at ``beta2``
close to 1, training is unstable at larger step sizes.

Nothing here reimplements Adam: every arm is a ``torch.optim`` class. Arms (each on the spec's
common learning-rate grid, the lr picked per workload by mean VALIDATION accuracy; constant lr):

* ``adam`` (betas 0.9, 0.999, eps 1e-8), ``sgd_nesterov`` (momentum 0.9, Nesterov), ``adagrad``,
  ``rmsprop`` (alpha 0.99): the same grid for all, so the same tuning effort;
* ``adam_nobc`` / ``adam_b2_9999`` / ``adam_b2_9999_nobc`` on ``cfg["ablation_workloads"]``: Adam
  without bias correction is torch's Adam with the per-step factor
  ``(1 - beta1^t) / sqrt(1 - beta2^t)`` (:func:`no_bias_correction_factor`) as a ``LambdaLR``
  schedule, which cancels torch's correction; the only departure is that ``eps`` acts as
  ``eps sqrt(1 - beta2^t)`` (pinned by the experiment's tests);
* ``adam_fixed``: Adam at ``cfg["scale_lr"]``; ``adam_scale_<tag>``: the same with the training
  loss multiplied by ``c`` (``cfg["scales"]``); ``adam_scale_<tag>_eps``: the same with ``eps c``.

Derived in :func:`_extra_derive`: ``<workload>_log_train_loss`` for every grid arm,
``best_rival`` (per workload, the rival with the lowest mean final training loss, each at its
validation-chosen lr), ``<workload>_scale_dev`` = ``|L_c / c - L_1| / L_1`` (final training loss,
unscaled, against ``adam_fixed`` seed by seed) and, for the ablation arms, ``<workload>_stable_lrs``
(grid points whose final training loss is below ``log(num_classes)``, the loss at a uniform
prediction: the run did not collapse).
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Callable

import torch
from torch import nn

from zoo.experiments._optbench import Method, job_arms, optbench
from zoo.harness import Table
from zoo.workloads.optim import Workload

__all__ = ["EXPERIMENT", "RIVALS", "no_bias_correction_factor", "scale_tag", "scaled_ce"]

RIVALS = ("sgd_nesterov", "adagrad", "rmsprop")
ABLATIONS = ("adam_nobc", "adam_b2_9999", "adam_b2_9999_nobc")


def no_bias_correction_factor(beta1: float, beta2: float) -> Callable[[int], float]:
    """``LambdaLR`` factor that undoes torch Adam's bias correction: step ``t = k + 1`` gets
    ``(1 - beta1^t) / sqrt(1 - beta2^t)``."""
    return lambda k: (1.0 - beta1 ** (k + 1)) / math.sqrt(1.0 - beta2 ** (k + 1))


def scale_tag(c: float) -> str:
    """``1000.0`` -> ``1e3``, ``0.001`` -> ``1em3``: a loss scale as part of an arm name."""
    return f"1e{round(math.log10(c))}".replace("-", "m")


def scaled_ce(c: float) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The cross-entropy training loss multiplied by ``c``."""
    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return c * torch.nn.functional.cross_entropy(model(x), y)
    return loss


def _adam(beta2: float = 0.999, bias_correction: bool = True, eps: float = 1e-8, fixed_lr: float | None = None):
    def build(params: list[nn.Parameter], steps: int, lr: float | None, cfg: dict[str, Any], w: Workload):
        rate = float(fixed_lr if fixed_lr is not None else lr)  # type: ignore[arg-type]
        opt = torch.optim.Adam(params, lr=rate, betas=(0.9, beta2), eps=eps)
        sched = None if bias_correction else torch.optim.lr_scheduler.LambdaLR(opt, no_bias_correction_factor(0.9, beta2))
        return opt, sched
    return build


def _sgd_nesterov(params, steps, lr, cfg, w):
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True), None


def _adagrad(params, steps, lr, cfg, w):
    return torch.optim.Adagrad(params, lr=lr), None


def _rmsprop(params, steps, lr, cfg, w):
    return torch.optim.RMSprop(params, lr=lr, alpha=0.99), None


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    grid = tuple(float(v) for v in cfg["lrs"])
    abl = tuple(w for w in cfg["ablation_workloads"] if w in cfg["workloads"])
    lr0 = float(cfg["scale_lr"])
    out: dict[str, Method] = {
        "adam": Method(build=_adam(), lrs=grid),
        "sgd_nesterov": Method(build=_sgd_nesterov, lrs=grid),
        "adagrad": Method(build=_adagrad, lrs=grid),
        "rmsprop": Method(build=_rmsprop, lrs=grid),
    }
    if abl:
        out["adam_nobc"] = Method(build=_adam(bias_correction=False), lrs=grid, workloads=abl)
        out["adam_b2_9999"] = Method(build=_adam(beta2=0.9999), lrs=grid, workloads=abl)
        out["adam_b2_9999_nobc"] = Method(build=_adam(beta2=0.9999, bias_correction=False), lrs=grid, workloads=abl)
    out["adam_fixed"] = Method(build=_adam(fixed_lr=lr0))
    for c in cfg["scales"]:
        c = float(c)
        out[f"adam_scale_{scale_tag(c)}"] = Method(build=_adam(fixed_lr=lr0), loss=scaled_ce(c))
        out[f"adam_scale_{scale_tag(c)}_eps"] = Method(build=_adam(fixed_lr=lr0, eps=1e-8 * c), loss=scaled_ce(c))
    return out


def _extra_derive(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    ms = _methods(cfg)
    jobs = job_arms(ms, cfg)
    for wname in cfg["workloads"]:
        key = f"{wname}_train_loss"
        for m, meth in ms.items():
            if meth.lrs is not None and key in derived.get(m, {}):
                derived[m][f"{wname}_log_train_loss"] = [math.log10(max(v, 1e-30)) for v in derived[m][key]]
        # the strongest rival on the training objective, each at its own validation-chosen lr
        rivals = [r for r in RIVALS if key in derived.get(r, {})]
        if rivals:
            best = min(rivals, key=lambda r: (statistics.fmean(derived[r][key]), RIVALS.index(r)))
            row = derived.setdefault("best_rival", {})
            for k, v in derived[best].items():
                if k.startswith(f"{wname}_"):
                    row[k] = list(v)
            row[f"{wname}_rival"] = [float(RIVALS.index(best))] * len(table.seeds)
        # gradient-scale invariance: the unscaled final training loss against adam_fixed, seed by seed
        ref = derived.get("adam_fixed", {}).get(key)
        for c in cfg["scales"]:
            c = float(c)
            for suffix in ("", "_eps"):
                arm = f"adam_scale_{scale_tag(c)}{suffix}"
                if ref is not None and key in derived.get(arm, {}):
                    derived[arm][f"{wname}_scale_dev"] = [abs(v / c - r) / r for v, r in zip(derived[arm][key], ref)]
                    derived[arm][f"{wname}_unscaled_train_loss"] = [v / c for v in derived[arm][key]]
        # bias-correction ablation: how many grid points did not collapse (final loss below a uniform guess)
        if wname not in cfg["ablation_workloads"]:
            continue
        for m in ("adam", *ABLATIONS):
            if m not in ms:
                continue
            arms = [a for a, (mm, ww, _) in jobs.items() if mm == m and ww == wname]
            n_cls = int(cfg.get("num_classes", 10))
            counts = [0.0] * len(table.seeds)
            for a in arms:
                for i, v in enumerate(table.metric(a, "train_loss")):
                    counts[i] += float(v < math.log(n_cls))
            derived[m][f"{wname}_stable_lrs"] = counts


def _plot_methods(cfg: dict[str, Any]) -> list[str]:
    return ["adam", *RIVALS, *[m for m in ABLATIONS if cfg.get("ablation_workloads")]]


EXPERIMENT = optbench("adam", _methods, extra_derive=_extra_derive, plot_methods=_plot_methods)
