"""U-DoG (Kreisler, Ivgi, Hinder & Carmon, COLT 2024) on the convex ``lstsq`` workload with a known optimum.

The metric is ``lstsq_subopt = log10(F(w_T) - F*)`` on the training split, at each method's
output point (U-DoG: its weighted average, which the parameters hold; DoG averaged: the
polynomial-decay average). U-DoG takes two gradient evaluations per step (both on the step's
mini-batch), so its arms run **half the epochs** of the others: every compared arm spends the
same number of gradient evaluations. Two noise regimes of the same problem:

* **noisy**: the workload's mini-batches (32 of 1,600 rows), ``epochs`` epochs for the one-gradient
  methods: ``udog`` (``epochs / 2``), ``dog``, ``dog_avg`` (:class:`PolyAveraged`, gamma 8),
  ``sgdm_tuned`` (SGD momentum 0.9, cosine to 0, the learning rate the family's tuning stage chose
  on validation, ``reproductions/_baselines/optim/tuned.json``) and ``sgd_tuned`` (the same
  stage's constant-lr ``sgdm``); ``udog_2x`` is U-DoG for the full ``epochs`` (twice the
  gradient evaluations), for reference;
* **full batch** (no gradient noise): one step per epoch over all 1,600 rows, ``fb_epochs``
  gradient evaluations: ``udog_fb`` (``fb_epochs / 2`` steps), ``dog_fb``, ``dog_avg_fb``.

Every arm starts from the seed's initialisation of the linear model; the seed also draws the
batch order. All methods are used at their defaults (``reps_rel`` 1e-6, ``lr`` 1).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from zoo.experiment import Curve
from zoo.experiments._optbench import Method, optbench, tuned
from zoo.experiments._optim_tuning import build_baseline
from zoo.experiments.dog_distance_over_gradients import PolyAveraged
from zoo.harness import Table, mean_band
from zoo.optim.dog import DoG
from zoo.optim.u_dog import UDoG
from zoo.workloads.optim import run

__all__ = ["EXPERIMENT"]


def _udog(params: list[Any], steps: int, lr: float | None, cfg: dict[str, Any], w: Any) -> tuple[Any, None]:
    return UDoG(params, reps_rel=float(cfg.get("reps_rel", 1e-6))), None


def _dog(averaged: bool) -> Any:
    def build(params: list[Any], steps: int, lr: float | None, cfg: dict[str, Any], w: Any) -> tuple[Any, None]:
        opt = DoG(params, reps_rel=float(cfg.get("reps_rel", 1e-6)))
        return (PolyAveraged(opt, params, gamma=float(cfg.get("avg_gamma", 8.0))) if averaged else opt), None
    return build


def _runner(build: Any, full_batch: bool, half: bool) -> Method:
    """A method run with its own budget: full batch or not, half the epochs or not."""
    def go(cfg: dict[str, Any], w: Any, data: Any, seed: int, epochs: int, device: str) -> tuple[dict[str, float], dict[str, list[float]]]:
        if full_batch:
            w = dataclasses.replace(w, batch_size=data.n_train)
            epochs = int(cfg["fb_epochs"])
        n = epochs // 2 if half else epochs
        return run(w, data, lambda ps, steps: build(ps, steps, None, cfg, w), seed, epochs=n, device=device)
    return Method(run=go, workloads=("lstsq",))


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {
        "udog": _runner(_udog, full_batch=False, half=True),
        "udog_2x": _runner(_udog, full_batch=False, half=False),
        "dog": Method(build=_dog(False), workloads=("lstsq",)),
        "dog_avg": Method(build=_dog(True), workloads=("lstsq",)),
        "sgdm_tuned": tuned("sgdm_cosine", lambda p, steps, lr, cfg, w: build_baseline("sgdm_cosine", p, steps, lr)),
        "sgd_tuned": tuned("sgdm", lambda p, steps, lr, cfg, w: build_baseline("sgdm", p, steps, lr)),
        "udog_fb": _runner(_udog, full_batch=True, half=True),
        "dog_fb": _runner(_dog(False), full_batch=True, half=False),
        "dog_avg_fb": _runner(_dog(True), full_batch=True, half=False),
    }


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    """log10 suboptimality against gradient evaluations, per regime (U-DoG: two per step)."""
    if "lstsq" not in cfg["workloads"]:
        return []
    out = []
    for title, arms, per_epoch in (
        ("mini-batches of 32 (noisy gradients)", ["udog", "dog", "dog_avg", "sgdm_tuned", "sgd_tuned"], 50),
        ("full batch (no gradient noise)", ["udog_fb", "dog_fb", "dog_avg_fb"], 1),
    ):
        series, bands = {}, {}
        n_one = None
        for a in arms:
            rows = table.series(f"{a}__lstsq", "subopt")
            mean, band = mean_band(rows)
            if a.startswith("udog"):  # its epoch k spent the gradients of the others' epoch 2k
                series[a], bands[a] = mean, band
            else:
                series[a], bands[a] = mean[1::2], (band[0][1::2], band[1][1::2])
                n_one = len(mean)
        n = min(len(v) for v in series.values())
        series = {k: v[:n] for k, v in series.items()}
        bands = {k: (lo[:n], hi[:n]) for k, (lo, hi) in bands.items()}
        steps = table.metric(f"{arms[1]}__lstsq", "grad_evals")[0] / max(n_one or 1, 1)
        x = [2.0 * steps * (i + 1) for i in range(n)]
        out.append(Curve(title=f"lstsq, {title}\n(each method's output; mean, min-max, {len(table.seeds)} seeds)",
                         x=x, series=series, bands=bands, xlabel="gradient evaluations",
                         ylabel="log10(F - F*)", logx=per_epoch == 1))
    return out


EXPERIMENT = dataclasses.replace(optbench("u_dog_parameter_free", _methods), curves=_curves)
