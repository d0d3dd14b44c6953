"""SURE-Score (Aali et al., 2023) at small scale: score priors learned from 0 dB noisy 2-D ring data.

The paper learns a score-based prior from training data corrupted by additive Gaussian noise
(MIMO channels at 0 dB SNR, MRI at 10 dB) and uses it for posterior sampling in compressed sensing;
it compares with a prior trained naively on the noisy data and with one trained on clean data.
Here, per seed:

* clean data: points on a ring of radius ``ring_radius`` with radial spread ``ring_std`` (a 1-D
  manifold in 2-D); training data ``y = x + sigma_w n`` at ``snr_db`` (signal power per coordinate
  over noise variance, ``sigma_w`` from the clean training split), one noisy copy per point;
* three priors, the same :class:`~zoo.diffusion.sure_score.NoiseConditionalScore` MLP, optimiser,
  step budget and data order: ``clean`` (DSM on clean ``x``: the ceiling), ``naive`` (DSM on noisy
  ``y``, as if it were clean) and ``sure`` (:func:`~zoo.diffusion.sure_score.sure_score_loss` on ``y``);
* two inverse problems on held-out clean points, solved by annealed Langevin posterior sampling
  with the same noise (generator seeded by the seed) for every prior: ``denoise`` (``A = I``,
  measurement noise ``denoise_sigma``) and ``cs`` (one random unit-norm projection per point,
  ``m = 1 < d = 2``, noise ``cs_sigma``).

Metrics: ``mse`` (per coordinate, of one posterior sample) and ``nmse_db``
(``10 log10(sum ||x_hat - x||^2 / sum ||x||^2)``), on the test points; ``ring_err``, the mean distance
of the posterior samples from the ring radius (how much of the manifold the prior learned: with one
projection of a 2-D point the posterior is bimodal, two points of the ring, and a single sample's MSE
rewards a blurred prior that samples the chord between them, so compressed sensing also reports it).
The sampler's step size and steps were chosen on a tuning seed (7), not on the reported seeds.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zoo.diffusion.sure_score import (
    NoiseConditionalScore,
    annealed_langevin_posterior,
    dsm_loss,
    geometric_sigmas,
    sure_score_loss,
)
from zoo.experiment import Curve
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band
from zoo.training import TensorData, seed_everything, train

__all__ = ["EXPERIMENT", "PRIORS", "TASKS", "arms", "make_ring", "measure", "noisy_training_set", "train_prior"]

PRIORS = ("clean", "naive", "sure")
TASKS = ("denoise", "cs")


def arms(cfg: dict[str, Any]) -> list[str]:
    return [f"{p}_{t}" for t in TASKS for p in PRIORS]


def make_ring(cfg: dict[str, Any], n: int, generator: torch.Generator) -> torch.Tensor:
    theta = 2 * math.pi * torch.rand(n, generator=generator)
    r = float(cfg["ring_radius"]) + float(cfg["ring_std"]) * torch.randn(n, generator=generator)
    return torch.stack([r * theta.cos(), r * theta.sin()], dim=1)


def noisy_training_set(cfg: dict[str, Any], seed: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Clean training points, their one noisy copy at ``snr_db``, and ``sigma_w`` (seeded by the seed)."""
    g = torch.Generator().manual_seed(100 + seed)
    x = make_ring(cfg, int(cfg["n_train"]), g)
    sigma_w = math.sqrt(float(x.pow(2).mean()) / 10 ** (float(cfg["snr_db"]) / 10))
    return x, x + sigma_w * torch.randn(x.shape, generator=g), sigma_w


def _sigmas(cfg: dict[str, Any]) -> torch.Tensor:
    return geometric_sigmas(float(cfg["sigma_max"]), float(cfg["sigma_min"]), int(cfg["n_sigmas"]))


def train_prior(cfg: dict[str, Any], prior: str, seed: int, x: torch.Tensor, y: torch.Tensor,
                sigma_w: float) -> NoiseConditionalScore:
    """One prior of a seed: same network, optimiser, budget and data order for every ``prior``."""
    g = seed_everything(seed)
    net = NoiseConditionalScore(x.shape[1], int(cfg["hidden"]), int(cfg["depth"]))
    data = {"clean": x, "naive": y, "sure": y}[prior]
    td = TensorData(data, torch.zeros(len(data)), data[:1], torch.zeros(1), 1, "ring")
    opt = torch.optim.Adam(net.parameters(), lr=float(cfg["lr"]))
    epochs, bs = int(cfg["epochs"]), int(cfg["batch_size"])
    lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * math.ceil(len(data) / bs))
    sigmas = _sigmas(cfg)
    if prior == "sure":
        def loss(m: torch.nn.Module, b: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
            return sure_score_loss(m, b, sigma_w, sigmas, lam=float(cfg["lam"]))
    else:
        def loss(m: torch.nn.Module, b: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
            return dsm_loss(m, b, sigmas)
    train(net, td, opt, epochs=epochs, batch_size=bs, generator=g, loss=loss, scheduler=lr_sched, eval_every=0)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def measure(cfg: dict[str, Any], task: str, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Held-out clean points, the forward operators ``A`` ``(n, m, 2)``, the measurements and their noise std."""
    g = torch.Generator().manual_seed(200 + seed)
    x = make_ring(cfg, int(cfg["n_test"]), g)
    n = x.shape[0]
    if task == "denoise":
        A, s = torch.eye(2).expand(n, 2, 2).clone(), float(cfg["denoise_sigma"])
    elif task == "cs":
        a = torch.randn(n, 1, 2, generator=g)
        A, s = a / a.norm(dim=-1, keepdim=True), float(cfg["cs_sigma"])
    else:
        raise ValueError(f"unknown task {task!r}")
    meas = torch.einsum("nmd,nd->nm", A, x) + s * torch.randn(n, A.shape[1], generator=g)
    return x, A, meas, s


def _per_seed(cfg: dict[str, Any], seed: int, env: Env, setup: Any, shared: Any) -> dict[str, Any]:
    x, y, sigma_w = noisy_training_set(cfg, seed)
    return {"sigma_w": sigma_w, **{p: train_prior(cfg, p, seed, x, y, sigma_w) for p in PRIORS}}


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    prior, task = arm.split("_", 1)
    x, A, meas, s = measure(cfg, task, seed)
    g = torch.Generator().manual_seed(10_000 + seed)  # the same sampling noise for every prior
    xh = annealed_langevin_posterior(ctx.seed_state[prior], A, meas, s, _sigmas(cfg), int(cfg["langevin_steps"]),
                                     float(cfg["step_lr"]), g)
    err = (xh - x).pow(2)
    metrics = {"mse": float(err.mean()), "nmse_db": 10 * math.log10(float(err.sum() / x.pow(2).sum())),
               "ring_err": float((xh.norm(dim=1) - float(cfg["ring_radius"])).abs().mean()),
               "sigma_w": float(ctx.seed_state["sigma_w"])}
    series = {"samples": [round(v, 4) for v in xh[:200].reshape(-1).tolist()]} if seed == 0 else {}
    return JobOutput(metrics, series)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    series, bands = {}, {}
    for p in PRIORS:
        rows = [table.metric(f"{p}_{t}", "nmse_db") for t in TASKS]
        series[p], bands[p] = mean_band([list(r) for r in zip(*rows)])
    return [Curve(title="reconstruction NMSE (0: denoise, 1: compressed sensing m=1)", x=[0.0, 1.0], series=series,
                  bands=bands, xlabel="task", ylabel="NMSE (dB)", style={p: "o-" for p in PRIORS})]


EXPERIMENT = Experiment(name="sure_score_noisy_priors", arms=arms, job=_job, per_seed=_per_seed, curves=_curves)
