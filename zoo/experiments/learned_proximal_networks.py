"""Learned proximal networks (Fang, Buchanan & Sulam, ICLR 2024): the 1-D Laplacian toy.

The paper's first experiment (Sec. 4.1, Fig. 2; the authors' ``exps/laplacian``): clean data
``x ~ Laplace(0, b)``, noisy observations ``y = x + σ ε``; an LPN ``f_θ = ∇ψ_θ`` is trained on the
pairs ``(y, x)`` with the squared loss (``l2``, which learns the MMSE denoiser ``E[x | y]``), the
absolute loss (``l1``, the posterior median) or proximal matching (``pm``, γ decreasing
0.5 → 0.1 after an ``ℓ1`` warm-up, as the authors start proximal matching from an ``ℓ1``-trained
LPN). The MAP denoiser is the prox of ``-σ² log p = σ²|x|/b``, i.e. soft-thresholding at ``σ²/b``;
the paper shows that only proximal matching recovers it and that the regulariser ``R_θ`` recovered
through the convex conjugate (:func:`zoo.regularizers.learned_proximal_network.regularizer`) is then
``σ²|x|/b`` up to a constant, while the ``ℓ2``/``ℓ1`` LPNs give smoother, wrong priors.

Arms ``lap_l2``, ``lap_l1``, ``lap_pm``: the same initialisation and the same stream of training
pairs (both seeded by the seed, not the arm), the same number of optimiser steps, batch size and
learning-rate schedule (Adam, cosine decay), the projection of the ICNN weights after every step;
the loss is the only difference. Fresh pairs every step (one epoch over ``steps * batch_size``
pairs), as the authors sample a new batch per iteration.

Metrics (on a fixed test set of noisy ``y`` drawn from ``data_seed`` and on a grid of ``x``):

* ``map_err``: RMS of ``f_θ(y) - soft_threshold(y, σ²/b)`` over the test ``y`` (distance to the MAP
  denoiser);
* ``mmse_err``: RMS of ``f_θ(y) - E[x | y]`` over the test ``y`` (the posterior mean by quadrature);
* ``prior_err``: RMS over the grid ``x ∈ [-grid_lim, grid_lim]`` of ``R_θ(x) - σ²|x|/b`` after removing
  the best constant (the mean difference), i.e. the error of the recovered prior up to a constant;
* ``prior_corr``: Pearson correlation over the grid of ``R_θ(x)`` with ``|x|``;
* ``jac_asym``: not needed in 1-D (a scalar map is always a gradient); tested in the unit tests in 2-D.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zoo.experiment import Curve
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band
from zoo.regularizers.learned_proximal_network import (
    LearnedProximalNetwork,
    ProximalMatchingLoss,
    pointwise_loss,
    regularizer,
    soft_threshold,
)
from zoo.training import TensorData, seed_everything, train

__all__ = ["EXPERIMENT", "LOSSES", "arms", "laplace_pairs", "posterior_mean", "train_lpn", "evaluate"]

LOSSES = ("l2", "l1", "pm")


def arms(cfg: dict[str, Any]) -> list[str]:
    return [f"lap_{k}" for k in cfg["losses"]]


def laplace_pairs(n: int, b: float, sigma: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pairs ``(y, x)``: ``x ~ Laplace(0, b)`` (inverse CDF), ``y = x + σ ε``; shapes ``(n, 1)``."""
    u = torch.rand(n, 1, generator=generator, dtype=torch.float64) - 0.5
    x = (-b * torch.sign(u) * torch.log1p(-2 * u.abs())).float()
    y = x + sigma * torch.randn(n, 1, generator=generator)
    return y, x


def posterior_mean(y: torch.Tensor, b: float, sigma: float, lim: float = 15.0, points: int = 6001) -> torch.Tensor:
    """``E[x | y]`` for the Laplace prior and Gaussian noise, by quadrature on ``[-lim, lim]`` (float64)."""
    xs = torch.linspace(-lim, lim, points, dtype=torch.float64)
    yy = y.reshape(-1, 1).double()
    logw = -xs.abs() / b - (yy - xs) ** 2 / (2 * sigma**2)
    w = torch.softmax(logw, dim=1)
    return (w * xs).sum(1).reshape(y.shape).float()


def _setup(cfg: dict[str, Any], env: Env) -> dict[str, torch.Tensor]:
    for k in cfg["losses"]:
        if k not in LOSSES:
            raise ValueError(f"unknown loss {k!r}; use {list(LOSSES)}")
    b, sigma = float(cfg["laplace_scale"]), float(cfg["noise_std"])
    g = torch.Generator().manual_seed(int(cfg["data_seed"]))
    y_test, x_test = laplace_pairs(int(cfg["n_test"]), b, sigma, g)
    lim = float(cfg["grid_lim"])
    return {
        "y_test": y_test, "x_test": x_test,
        "map": soft_threshold(y_test, sigma**2 / b), "mmse": posterior_mean(y_test, b, sigma),
        "grid": torch.linspace(-lim, lim, int(cfg["grid_points"])).unsqueeze(1),
    }


def train_lpn(cfg: dict[str, Any], loss_kind: str, seed: int, device: str = "cpu") -> tuple[LearnedProximalNetwork, list[float]]:
    """One LPN trained with ``loss_kind`` (``l2``, ``l1``, ``pm``) on the seed's stream of Laplace pairs."""
    steps, batch = int(cfg["steps"]), int(cfg["batch_size"])
    b, sigma = float(cfg["laplace_scale"]), float(cfg["noise_std"])
    g = seed_everything(seed)
    model = LearnedProximalNetwork(1, int(cfg["hidden"]), int(cfg["layers"]), beta=float(cfg["beta"])).to(device)
    y, x = laplace_pairs(steps * batch, b, sigma, torch.Generator().manual_seed(1000 + seed))
    data = TensorData(y.to(device), x.to(device), y[:1].to(device), x[:1].to(device), 0, "laplace")
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    if loss_kind == "pm":
        loss = ProximalMatchingLoss(model, cfg["gammas"], warmup=float(cfg["pm_warmup"]), warmup_loss="l1")
        before = loss.before_step
    else:
        def loss(m: torch.nn.Module, yb: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
            return pointwise_loss(m(yb), xb, loss_kind)

        def before(step: int, total: int) -> None:
            model.project()
    hist = train(model, data, opt, epochs=1, batch_size=batch, generator=g, loss=loss, before_step=before,
                 scheduler=sched, eval_every=0)
    model.project()
    model.eval()
    return model, hist.train_loss


def evaluate(model: LearnedProximalNetwork, cfg: dict[str, Any], ref: dict[str, torch.Tensor]) -> tuple[dict[str, float], dict[str, list[float]]]:
    """The metrics of the module docstring, and the prox and regulariser on the grid (series)."""
    b, sigma = float(cfg["laplace_scale"]), float(cfg["noise_std"])
    f = model(ref["y_test"]).detach()
    grid = ref["grid"]
    r = regularizer(model, grid, steps=int(cfg["invert_steps"]), lr=float(cfg["invert_lr"]))
    true = sigma**2 * grid.squeeze(1).abs() / b
    diff = r - true
    prior_err = float((diff - diff.mean()).pow(2).mean().sqrt())
    rc, tc = r - r.mean(), true - true.mean()
    corr = float((rc * tc).sum() / (rc.norm() * tc.norm()).clamp(min=1e-12))
    metrics = {
        "map_err": float((f - ref["map"]).pow(2).mean().sqrt()),
        "mmse_err": float((f - ref["mmse"]).pow(2).mean().sqrt()),
        "prior_err": prior_err,
        "prior_corr": corr,
    }
    series = {"prox": model(grid).detach().squeeze(1).tolist(), "regularizer": (r - r.min()).tolist()}
    return metrics, series


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    kind = arm.removeprefix("lap_")
    model, losses = train_lpn(cfg, kind, seed, "cpu")
    metrics, series = evaluate(model, cfg, ctx.setup)
    series["train_loss"] = list(losses)
    return JobOutput(metrics=metrics, series=series)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    b, sigma = float(cfg["laplace_scale"]), float(cfg["noise_std"])
    lim, n = float(cfg["grid_lim"]), int(cfg["grid_points"])
    grid = torch.linspace(-lim, lim, n).unsqueeze(1)
    xs = grid.squeeze(1).tolist()
    prox, reg, bands_p, bands_r = {}, {}, {}, {}
    for arm in arms(cfg):
        prox[arm], bands_p[arm] = mean_band(table.series(arm, "prox"))
        reg[arm], bands_r[arm] = mean_band(table.series(arm, "regularizer"))
    prox["soft threshold (MAP)"] = soft_threshold(grid, sigma**2 / b).squeeze(1).tolist()
    prox["E[x|y] (MMSE)"] = posterior_mean(grid, b, sigma).squeeze(1).tolist()
    true = (sigma**2 * grid.squeeze(1).abs() / b).tolist()
    reg["sigma^2 |x| / b (true, up to a constant)"] = true
    k = len(table.seeds)
    return [
        Curve(f"Learned prox f(y) ({k} seeds)", xs, prox, xlabel="y", ylabel="f(y)", bands=bands_p),
        Curve(f"Recovered regulariser R(x) - min ({k} seeds)", xs, reg, xlabel="x", ylabel="R(x)", bands=bands_r),
    ]


EXPERIMENT = Experiment(name="learned_proximal_networks", arms=arms, setup=_setup, job=_job, curves=_curves)
