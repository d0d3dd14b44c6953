"""Adapt-then-Unlearn (Tiwary et al., TMLR) at small scale: forgetting one mode of a 2-D ring GAN.

The paper unlearns a class (MNIST, AFHQ) or an attribute (CelebA-HQ) from a pretrained StyleGAN2:
stage 1 adapts a copy to a few user-flagged negative samples with an EWC regulariser
(:func:`zoo.unlearning.adapt_then_unlearn.ewc_penalty`), giving ``theta_N``; stage 2 trains the
ORIGINAL on positive samples with a repulsion term pushing its parameters away from ``theta_N``
(EL2 / NL2 / IL2, :func:`~zoo.unlearning.adapt_then_unlearn.repulsion_loss`). Here, per seed:

* **data**: a ring of ``modes`` Gaussians (radius ``radius``, std ``std``; the CFG entry's
  :func:`~zoo.experiments.classifier_free_guidance.make_gmm`, drawn once from seed 0), train / test
  splits; a point's class is its nearest component (exact here: adjacent means are > 6 std apart).
* **pretrained GAN** (``per_seed``): MLP generator (``latent`` -> ``hidden`` x2 -> 2) and MLP
  discriminator, non-saturating loss, Adam(0.5, 0.999), ``pretrain_steps`` steps on the training
  split (all modes);
* **feedback data** (``per_seed``, as the authors' ``FeedbackData_pos`` / negatives): ``n_feedback``
  samples of the pretrained G, split by the class oracle into positives (not ``forget_class``)
  and the first ``n_negatives`` negatives; the real data is never used after pretraining;
* **stage 1** (``per_seed``, shared by all arms): a copy of (G, D) trained ``adapt_steps`` steps on
  the negatives with ``ewc_lambda * sum F~ (theta - theta_G)^2`` (Fisher at ``theta_G``, divided by
  its mean so ``ewc_lambda`` is scale-free): ``theta_N``;
* **stage 2** (one job per arm): copies of the ORIGINAL (G, D) trained ``unlearn_steps`` steps on the
  positives with ``gamma * L_rep(d^2 / d0^2)``, ``d0^2 = ||theta_G - theta_N||^2`` (per-tensor mean
  squares, as the authors' code), arms ``atu_el2`` / ``atu_nl2`` / ``atu_il2``; ``retain_ft`` is
  the same stage 2 with ``gamma = 0`` (the baseline: identical data, latents, order, optimiser, init).
  ``original`` and ``adapted`` are the pretrained and stage-1 generators, unchanged.

Departures: a 2-D MLP GAN instead of StyleGAN2 on images; a nearest-component class oracle in place
of the authors' pretrained classifiers; a fixed step budget (no checkpoint selection); the repulsion
distance normalised by its starting value (the authors rescale by hand per model).

Metrics (``n_eval`` samples from fixed latents, identical for every arm of a seed):
``forget_share`` (% in the forgotten mode), ``fd_retain`` (mean over the retained modes of the
per-mode Frechet distance of Gaussian fits between samples and real test points of that mode,
divided by the mode variance ``2 std^2``), ``coverage_tv`` (total variation between the
sample histogram over the retained modes and uniform), ``fd_ratio`` (``fd_retain`` over the
original's), ``forget_ratio`` (``forget_share`` over the original's), ``rel_dist`` (final ``d^2 / d0^2``; 0 for the adapted G, 1 for the original).
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any

import torch
from torch import nn

from zoo.experiment import Curve
from zoo.experiments.classifier_free_guidance import frechet_distance, make_gmm
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table
from zoo.training import seed_everything
from zoo.unlearning.adapt_then_unlearn import (
    REPULSIONS,
    ewc_fisher,
    ewc_penalty,
    gan_step,
    param_sq_distance,
    repulsion_loss,
    snapshot,
)

__all__ = ["EXPERIMENT", "ARMS", "arms", "ring", "classify", "make_gan", "pretrain", "feedback", "adapt",
           "unlearn", "evaluate"]

ARMS = ("original", "adapted", "retain_ft", *(f"atu_{r}" for r in REPULSIONS))
DATA_SEED = 0


def arms(cfg: dict[str, Any]) -> list[str]:
    return list(ARMS)


@functools.lru_cache(maxsize=4)
def ring(modes: int, radius: float, std: float, n_train: int, n_test: int) -> dict[str, torch.Tensor]:
    """The ring data (train / test points and labels) and its component means, drawn from seed 0."""
    g = torch.Generator().manual_seed(DATA_SEED)
    xtr, ytr = make_gmm(modes, radius, std, n_train, g)
    xte, yte = make_gmm(modes, radius, std, n_test, g)
    ang = 2 * math.pi * torch.arange(modes, dtype=torch.float32) / modes
    return {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte,
            "means": radius * torch.stack([ang.cos(), ang.sin()], 1)}


def _data(cfg: dict[str, Any]) -> dict[str, torch.Tensor]:
    return ring(int(cfg["modes"]), float(cfg["radius"]), float(cfg["std"]), int(cfg["n_train"]), int(cfg["n_test"]))


def classify(x: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Nearest-component class of each point (the feedback / evaluation oracle)."""
    return torch.cdist(x, means.to(x.device)).argmin(1)


class Generator(nn.Module):
    def __init__(self, latent: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.latent = latent
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def make_gan(cfg: dict[str, Any], dim: int = 2, device: str = "cpu") -> tuple[Generator, nn.Module]:
    h = int(cfg["hidden"])
    gen = Generator(int(cfg["latent"]), h, dim).to(device)
    disc = nn.Sequential(nn.Linear(dim, h), nn.LeakyReLU(0.2), nn.Linear(h, h), nn.LeakyReLU(0.2),
                         nn.Linear(h, 1), nn.Flatten(0)).to(device)
    return gen, disc


def _train(cfg: dict[str, Any], gen: Generator, disc: nn.Module, x: torch.Tensor, steps: int,
           g: torch.Generator, g_reg: Any = None) -> None:
    lr = float(cfg["lr"])
    g_opt = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    bs = min(int(cfg["batch_size"]), x.shape[0])
    latent = lambda n: torch.randn(n, gen.latent, generator=g).to(x.device)  # noqa: E731
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (bs,), generator=g).to(x.device)
        gan_step(gen, disc, g_opt, d_opt, x[idx], latent, g_reg)


def pretrain(cfg: dict[str, Any], x: torch.Tensor, seed: int, device: str = "cpu") -> tuple[Generator, nn.Module]:
    seed_everything(seed)
    gen, disc = make_gan(cfg, x.shape[1], device)
    _train(cfg, gen, disc, x, int(cfg["pretrain_steps"]), torch.Generator().manual_seed(seed))
    return gen, disc


@torch.no_grad()
def feedback(cfg: dict[str, Any], gen: Generator, means: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(positives, negatives)``: samples of the pretrained G split by the class oracle."""
    z = torch.randn(int(cfg["n_feedback"]), gen.latent, generator=torch.Generator().manual_seed(40_000 + seed))
    x = gen(z.to(next(gen.parameters()).device))
    neg = classify(x, means) == int(cfg["forget_class"])
    return x[~neg], x[neg][: int(cfg["n_negatives"])]


def adapt(cfg: dict[str, Any], gen: Generator, disc: nn.Module, negatives: torch.Tensor, seed: int) -> Generator:
    """Stage 1: a copy of (G, D) adapted to the negatives with the (mean-normalised) EWC penalty."""
    g = torch.Generator().manual_seed(10_000 + seed)
    gen_n, disc_n = copy.deepcopy(gen), copy.deepcopy(disc)
    latent = lambda n: torch.randn(n, gen.latent, generator=g).to(negatives.device)  # noqa: E731
    fisher = ewc_fisher(gen_n, disc_n, latent)
    mean = torch.cat([f.flatten() for f in fisher.values()]).mean().clamp_min(1e-20)
    fisher = {k: f / mean for k, f in fisher.items()}
    anchor, lam = snapshot(gen), float(cfg["ewc_lambda"])
    _train(cfg, gen_n, disc_n, negatives, int(cfg["adapt_steps"]), g, lambda: lam * ewc_penalty(gen_n, anchor, fisher))
    return gen_n


def unlearn(cfg: dict[str, Any], gen: Generator, disc: nn.Module, adapted: nn.Module, positives: torch.Tensor,
            kind: str | None, seed: int) -> tuple[Generator, float]:
    """Stage 2 on copies of the ORIGINAL (G, D); ``kind=None`` is the no-repulsion baseline.

    Returns the generator and its final ``d^2 / d0^2``.
    """
    g = torch.Generator().manual_seed(20_000 + seed)  # the same data order and latents for every arm
    gen_u, disc_u = copy.deepcopy(gen), copy.deepcopy(disc)
    theta_n = snapshot(adapted)
    d0 = float(param_sq_distance(gen, theta_n))
    reg = None
    if kind is not None:
        gamma, alpha = float(cfg["gamma"][kind]), float(cfg["alpha"])
        reg = lambda: gamma * repulsion_loss(param_sq_distance(gen_u, theta_n), kind, alpha=alpha, scale=d0)  # noqa: E731
    _train(cfg, gen_u, disc_u, positives, int(cfg["unlearn_steps"]), g, reg)
    return gen_u, float(param_sq_distance(gen_u, theta_n)) / d0


@torch.no_grad()
def evaluate(cfg: dict[str, Any], gen: Generator, seed: int) -> dict[str, float]:
    data = _data(cfg)
    z = torch.randn(int(cfg["n_eval"]), gen.latent, generator=torch.Generator().manual_seed(30_000 + seed))
    x = gen(z.to(next(gen.parameters()).device)).cpu()
    pred = classify(x, data["means"])
    k, m = int(cfg["forget_class"]), int(cfg["modes"])
    var = 2.0 * float(cfg["std"]) ** 2
    fds, counts = [], []
    for c in range(m):
        if c == k:
            continue
        xs, xr = x[pred == c].double(), data["x_test"][data["y_test"] == c].double()
        counts.append(xs.shape[0])
        if xs.shape[0] < 3:
            fds.append(float(cfg["fd_empty"]))  # a dropped mode: a fixed, large penalty
            continue
        fds.append(frechet_distance(xs.mean(0), torch.cov(xs.T), xr.mean(0), torch.cov(xr.T)) / var)
    share = torch.tensor(counts, dtype=torch.float64)
    share = share / share.sum().clamp_min(1)
    return {"forget_share": 100.0 * float((pred == k).double().mean()), "fd_retain": sum(fds) / len(fds),
            "coverage_tv": 0.5 * float((share - 1.0 / (m - 1)).abs().sum())}


def _per_seed(cfg: dict[str, Any], seed: int, env: Env, setup: Any, shared: Any) -> dict[str, Any]:
    data = _data(cfg)
    gen, disc = pretrain(cfg, data["x_train"].to(env.device), seed, env.device)
    pos, neg = feedback(cfg, gen, data["means"], seed)
    gen_n = adapt(cfg, gen, disc, neg, seed)
    return {"gen": gen, "disc": disc, "adapted": gen_n, "positives": pos,
            "original": evaluate(cfg, gen, seed)}


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    st = ctx.seed_state
    if arm == "original":
        gen, rel = st["gen"], 1.0
    elif arm == "adapted":
        gen, rel = st["adapted"], 0.0
    elif arm == "retain_ft" or arm.startswith("atu_"):
        kind = None if arm == "retain_ft" else arm.removeprefix("atu_")
        gen, rel = unlearn(cfg, st["gen"], st["disc"], st["adapted"], st["positives"], kind, seed)
    else:
        raise ValueError(f"unknown arm {arm!r}")
    m = evaluate(cfg, gen, seed)
    m["fd_ratio"] = m["fd_retain"] / st["original"]["fd_retain"]
    m["forget_ratio"] = m["forget_share"] / max(st["original"]["forget_share"], 1e-9)
    m["rel_dist"] = rel
    return JobOutput(m)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    xs = [float(i) for i in range(len(ARMS))]
    series = {metric: [sum(v) / len(v) for v in (table.metric(a, metric) for a in ARMS)]
              for metric in ("forget_share", "fd_ratio")}
    return [Curve(title="forget share (%) and retained FD ratio per arm (" + ", ".join(f"{i}: {a}" for i, a in enumerate(ARMS)) + ")",
                  x=xs, series=series, xlabel="arm", ylabel="value", style={k: "o" for k in series})]


EXPERIMENT = Experiment(name="adapt_then_unlearn_gan", arms=arms, job=_job, per_seed=_per_seed, curves=_curves)
