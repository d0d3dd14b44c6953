"""DoG and L-DoG (Ivgi, Hinder & Carmon, ICML 2023) against tuned SGD and Adam, on the shared workload suite.

Arms (every one on every workload of ``cfg["workloads"]``, the same data, initialisation, batch
order and epochs; built with :func:`zoo.experiments._optbench.optbench`):

* ``dog`` / ``ldog``: :class:`zoo.optim.dog.DoG` / :class:`~zoo.optim.dog.LDoG` at the package
  defaults (``reps_rel`` 1e-6, ``lr`` 1, no weight decay, no schedule), evaluated at the last iterate;
* ``dog_avg`` / ``ldog_avg``: the same runs evaluated at the polynomial-decay average the authors
  recommend (:class:`~zoo.optim.dog.PolynomialDecayAverager`, ``gamma`` 8, folded in after every
  step): :class:`PolyAveraged` wraps the optimizer and swaps the averaged weights in for every
  evaluation (the shared loop calls its ``eval()`` / ``train()``), so the reported accuracies are
  the averaged model's;
* ``dog_avg_reps<x>``: ``dog_avg`` at another ``reps_rel`` (``cfg["reps_grid"]``), for the r_ε
  sensitivity;
* ``sgdm_tuned`` / ``adam_tuned``: SGD (momentum 0.9) / Adam with cosine annealing to 0 over the
  run, each at the learning rate the family's tuning stage chose per workload on the validation
  split (``reproductions/_baselines/optim/tuned.json``, baselines ``sgdm_cosine`` / ``adam_cosine``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.experiments._optbench import Method, optbench, tuned
from zoo.experiments._optim_tuning import build_baseline
from zoo.optim.dog import DoG, LDoG, PolynomialDecayAverager

__all__ = ["EXPERIMENT", "PolyAveraged", "reps_slug"]


class PolyAveraged:
    """An optimizer whose evaluations use the polynomial-decay average of the weights it trains.

    ``step(closure)`` runs the wrapped optimizer's step, then folds the new weights into a
    :class:`PolynomialDecayAverager`; ``eval()`` swaps the averaged weights into the parameters
    (keeping the trained ones aside) and ``train()`` swaps the trained ones back. Everything else
    (``param_groups``, ``zero_grad``, ``state_dict``) is the wrapped optimizer's.
    """

    def __init__(self, inner: torch.optim.Optimizer, params: list[nn.Parameter], gamma: float = 8.0) -> None:
        holder = nn.Module()
        holder.params = nn.ParameterList(params)  # the same Parameter objects: the averager reads them
        self.inner = inner
        self.params = list(params)
        self.averager = PolynomialDecayAverager(holder, gamma=gamma)
        self._trained: list[torch.Tensor] | None = None

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.inner.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Any = None) -> Any:
        if self._trained is not None:
            raise RuntimeError("PolyAveraged.step() in eval mode: call train() first")
        loss = self.inner.step(closure)
        self.averager.step()
        return loss

    @torch.no_grad()
    def eval(self) -> None:
        if self._trained is None:
            self._trained = [p.detach().clone() for p in self.params]
            averaged = list(self.averager.averaged_model.parameters())
            for p, a in zip(self.params, averaged):
                p.copy_(a)

    @torch.no_grad()
    def train(self) -> None:
        if self._trained is not None:
            for p, t in zip(self.params, self._trained):
                p.copy_(t)
            self._trained = None

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "averager": self.averager.state_dict()}


def reps_slug(reps: float) -> str:
    """``1e-08`` -> ``1em8``: a reps_rel value as part of an arm name."""
    return f"{reps:.0e}".replace("-0", "m").replace("-", "m").replace("+0", "").replace("+", "")


def _dog(cls: type, averaged: bool, reps_rel: float = 1e-6) -> Method:
    def build(params: list[nn.Parameter], steps: int, lr: float | None, cfg: dict[str, Any], w: Any) -> tuple[Any, None]:
        opt = cls(params, reps_rel=reps_rel)
        return (PolyAveraged(opt, params, gamma=float(cfg.get("avg_gamma", 8.0))) if averaged else opt), None
    return Method(build=build)


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    out = {
        "dog": _dog(DoG, averaged=False),
        "dog_avg": _dog(DoG, averaged=True),
        "ldog": _dog(LDoG, averaged=False),
        "ldog_avg": _dog(LDoG, averaged=True),
        "sgdm_tuned": tuned("sgdm_cosine", lambda p, steps, lr, cfg, w: build_baseline("sgdm_cosine", p, steps, lr)),
        "adam_tuned": tuned("adam_cosine", lambda p, steps, lr, cfg, w: build_baseline("adam_cosine", p, steps, lr)),
    }
    for reps in cfg.get("reps_grid", []):
        out[f"dog_avg_reps{reps_slug(float(reps))}"] = _dog(DoG, averaged=True, reps_rel=float(reps))
    return out


def _plotted(cfg: dict[str, Any]) -> list[str]:
    return ["dog", "dog_avg", "ldog_avg", "sgdm_tuned", "adam_tuned"]


EXPERIMENT = optbench("dog_distance_over_gradients", _methods, plot_methods=_plotted)
