"""DiffEnc (Nielsen et al., ICLR 2024) at small scale: VDM with vs without a learned encoder on 8x8 digits.

Per seed, two arms trained on the digits domain's training split (:func:`zoo.experiments._diffbench.load_domain`,
pixels mapped to the 17 levels ``2x - 1`` in [-1, 1]):

* ``vdm``: continuous-time VDM, identity encoder ``x_phi(x, t) = x`` (the baseline);
* ``diffenc``: the same model with DiffEnc's learned encoder ``x_phi = (1 - sigma_t^2) x + sigma_t^2 y_phi(x, t)``
  (:mod:`zoo.diffusion.diffenc`).

Both arms: the same denoiser architecture and its SAME initial weights (built first after seeding;
the encoder, DiffEnc's extra parameters as in the paper, is built afterwards and starts as the identity,
so both arms have the same model, hence the same ELBO, at step 0), fixed linear schedule,
optimiser, learning-rate schedule, epochs and data order (seeded by the seed). Test ELBO: the
per-image -ELBO (diffusion + prior + reconstruction) in bits per dimension, averaged over the test
split and ``eval_passes`` draws of (t, eps) from a generator seeded by the seed (the same for both
arms). The discrete data are scored with VDM's discrete decoder over the 17 levels (no uniform
dequantisation). ``init_bpd`` is the same ELBO at initialisation (for the "baseline trained"
precondition).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zoo.diffusion.diffenc import VDM, LearnedEncoder
from zoo.experiment import Curve
from zoo.experiments._diffbench import load_domain
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table
from zoo.training import TensorData, seed_everything, train

__all__ = ["EXPERIMENT", "ARMS", "build_model", "evaluate", "train_arm", "to_levels", "LEVELS"]

ARMS = ("vdm", "diffenc")
LEVELS = 17  # sklearn digits: integers 0..16


def _arms(cfg: dict[str, Any]) -> list[str]:
    return list(ARMS)


def _setup(cfg: dict[str, Any], env: Env) -> Any:
    return load_domain("digits", env.data_dir, env.device)


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] (multiples of 1/16) to the 17 levels in [-1, 1]."""
    return torch.round(x * (LEVELS - 1)) * (2.0 / (LEVELS - 1)) - 1.0


def build_model(cfg: dict[str, Any], arm: str, seed: int, dim: int = 64) -> VDM:
    """The arm's model, seeded by ``seed``: the denoiser's weights are the same in both arms."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; use {ARMS}")
    seed_everything(seed)
    model = VDM(dim, LEVELS, hidden=int(cfg["hidden"]), depth=int(cfg["depth"]))
    if arm == "diffenc":
        model.encoder = LearnedEncoder(dim, int(cfg["enc_hidden"]), int(cfg["enc_depth"]))
    return model


@torch.no_grad()
def evaluate(model: VDM, x: torch.Tensor, passes: int, seed: int) -> dict[str, float]:
    """Mean -ELBO terms (bits/dim) over ``x`` and ``passes`` draws of (t, eps), from a generator seeded by ``seed``."""
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(50_000 + seed)
    acc: dict[str, float] = {}
    for _ in range(int(passes)):
        with torch.enable_grad():  # the encoder's JVP
            terms = {k: v.detach() for k, v in model.loss_terms(x, generator=g).items()}
        for k, v in model.bpd(terms).items():
            acc[k] = acc.get(k, 0.0) + v / passes
    model.train(was)
    return acc


def train_arm(cfg: dict[str, Any], arm: str, seed: int, domain: Any, device: str = "cpu") -> tuple[VDM, list[float]]:
    model = build_model(cfg, arm, seed, domain.dim).to(device)
    xtr = to_levels(domain.data.x_train)
    td = TensorData(xtr, domain.data.y_train, to_levels(domain.data.x_test), domain.data.y_test, 10, "digits")
    g = seed_everything(seed)
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
    epochs, bs = int(cfg["epochs"]), int(cfg["batch_size"])
    total = epochs * math.ceil(td.n_train / bs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    hist = train(model, td, opt, epochs=epochs, batch_size=bs, generator=g,
                 loss=lambda m, xb, _: m.loss_terms(xb)["nelbo"].mean() / (domain.dim * math.log(2.0)),
                 scheduler=sched, eval_every=0)
    model.eval()
    return model, list(hist.train_loss)


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    domain = ctx.setup
    passes = int(cfg["eval_passes"])
    xte, xva = to_levels(domain.data.x_test), to_levels(domain.data.x_val)
    init = evaluate(build_model(cfg, arm, seed, domain.dim).to(ctx.device), xte, passes, seed)
    model, losses = train_arm(cfg, arm, seed, domain, ctx.device)
    test = evaluate(model, xte, passes, seed)
    val = evaluate(model, xva, passes, seed)
    metrics = {"elbo_bpd": test["nelbo"], "diffusion_bpd": test["diffusion"], "prior_bpd": test["prior"],
               "recon_bpd": test["recon"], "val_elbo_bpd": val["nelbo"], "init_bpd": init["nelbo"]}
    return JobOutput(metrics, {"train_loss": [round(v, 5) for v in losses]})


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    """Training -ELBO (bits/dim) per epoch, seed-mean per arm."""
    series = {}
    for arm in ARMS:
        rows = table.series(arm, "train_loss")
        if rows:
            series[arm] = [sum(c) / len(c) for c in zip(*rows)]
    if not series:
        return []
    n = len(next(iter(series.values())))
    return [Curve(title="training -ELBO (bits/dim)", x=[float(i + 1) for i in range(n)], series=series,
                  xlabel="epoch", ylabel="bits/dim")]


EXPERIMENT = Experiment(name="diffenc", arms=_arms, job=_job, setup=_setup, curves=_curves)
