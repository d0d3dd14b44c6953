"""Multiplicative (GBM) vs additive denoising diffusion on positive 8x8 digits (Shetty et al., 2025).

Data: the digits domain's splits (:func:`zoo.experiments._diffbench.load_domain`) with pixels shifted
to be strictly positive, ``x_pos = x + offset`` (``offset`` = 0.1 in the spec: pixels in [0.1, 1.1]).
Per seed, three class-conditional denoisers of the SAME recipe (``RECIPES[cfg["recipe"]]``: MLP size,
epochs, batch size, optimiser, cosine schedule, label dropout; weights and data order seeded by the
seed alone through :func:`~zoo.experiments._diffbench.train_denoiser`), sampled from the same noise
stream (:func:`~zoo.experiments._diffbench.sample_noise`) with the same ancestral scheduler and steps:

* ``additive``: the DDPM baseline, epsilon-MSE on the affine image ``2 (x_pos - offset) - 1`` in
  [-1, 1] (the harness's digits map), sampled WITHOUT an x0 clip box: the positivity contrast (a
  clip to the data range would enforce positivity by hand);
* ``additive_clip``: the same model, sampled with the harness's clip of the x0 estimate to
  ``[-clip, clip]`` (``clip`` = 1.0, the data range): the quality baseline;
* ``multiplicative``: GBM forward process and M-DSM on ``x_pos``
  (:func:`zoo.diffusion.multiplicative.mdsm_loss`), sampled with the Dale-Langevin update
  ``x <- x * exp(s (u' - u))`` (:func:`~zoo.diffusion.multiplicative.sample_dale_langevin`) with
  the log-space x0 estimate clipped to ``[-clip, clip]`` in the standardised log units
  ``u = (log x - mu) / s`` (``clip`` = 1.0 is ``x0_hat`` in ``[offset, 1 + offset]``, the same box as
  the clipped additive arm). Unclipped, both samplers diverged in the pilot; the clip bounds the
  estimate, never the sign: positivity comes from the exponential update alone;
* ``multiplicative_noclip``: the same multiplicative model sampled without the clip (informational:
  how the unclipped Dale-Langevin sampler fails; positive unless exp over/underflows).

Metrics (test split as the reference): the fixed scorer's ``class_acc``, ``diversity``, ``fd`` and
``log_fd`` (natural log of fd) on samples mapped back to pixels (``x_pos - offset``, clamped to
[0, 1], NaN set to 0, +-inf to 1 / 0); the sign metrics of :func:`positivity` on ``x_pos`` before
any clamp (``neg_frac``, ``neg_samples``, ``nonfinite_frac``, ``min_value``); ``final_loss``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from zoo.diffusion import sample
from zoo.diffusion.multiplicative import LogTransform, mdsm_loss, sample_dale_langevin
from zoo.experiments._diffbench import (RECIPES, Domain, fit_scorer, load_domain, make_scheduler, sample_noise,
                                        sample_series, train_denoiser)
from zoo.harness import Env, Experiment, JobContext, JobOutput

__all__ = ["EXPERIMENT", "ARMS", "arm_domain", "arm_clip", "train_arm", "draw_positive", "recipe"]

ARMS = ("additive", "additive_clip", "multiplicative", "multiplicative_noclip")


def _setup(cfg: dict[str, Any], env: Env) -> Domain:
    return load_domain("digits", env.data_dir, env.device)


def _shared(cfg: dict[str, Any], env: Env, setup: Domain) -> Any:
    return fit_scorer(setup, env.device, epochs=cfg.get("scorer_epochs") or None)


def recipe(cfg: dict[str, Any]):
    r = RECIPES[cfg["recipe"]]
    return r.replace(epochs=int(cfg["epochs"])) if cfg.get("epochs") else r


def arm_clip(cfg: dict[str, Any], arm: str) -> float | None:
    """The sampler's x0 clip box of an arm (None: no clip)."""
    if arm in ("additive", "multiplicative_noclip"):
        return None
    if arm in ("additive_clip", "multiplicative"):
        return float(cfg["clip"])
    raise ValueError(f"unknown arm {arm!r}; use {ARMS}")


def arm_domain(cfg: dict[str, Any], arm: str, domain: Domain) -> Domain:
    """The domain each arm trains on: the same data, the additive arms in [-1, 1], the
    multiplicative arm on ``x_pos = x + offset`` itself (its loss takes logs)."""
    if arm in ("additive", "additive_clip"):
        return dataclasses.replace(domain, clip=arm_clip(cfg, arm))
    if arm in ("multiplicative", "multiplicative_noclip"):
        return dataclasses.replace(domain, scale=1.0, shift=float(cfg["offset"]), clip=arm_clip(cfg, arm))
    raise ValueError(f"unknown arm {arm!r}; use {ARMS}")


def train_arm(cfg: dict[str, Any], arm: str, domain: Domain, seed: int, device: str = "cpu"):
    dom = arm_domain(cfg, arm, domain)
    r = recipe(cfg)
    if arm in ("additive", "additive_clip"):
        return train_denoiser(r, dom, seed, device)
    tr = LogTransform(float(cfg["offset"]))
    loss = lambda m, sched, x0, y: mdsm_loss(m, sched, x0, y, tr, p_uncond=r.p_uncond)  # noqa: E731
    return train_denoiser(r, dom, seed, device, loss=loss)


@torch.no_grad()
def draw_positive(cfg: dict[str, Any], arm: str, model, domain: Domain, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples of every class as ``x_pos`` values (unclamped) and their labels; same noise for every arm."""
    offset = float(cfg["offset"])
    device = next(model.parameters()).device
    labels = torch.arange(domain.num_classes, device=device).repeat_interleave(int(cfg["samples_per_class"]))
    z = torch.randn(labels.shape[0], domain.dim, generator=generator, device=generator.device).to(device)
    sched = make_scheduler(recipe(cfg), arm_clip(cfg, arm), int(cfg["steps"]), "ddpm")

    def eps_fn(x_: torch.Tensor, t: int) -> torch.Tensor:
        return model(x_, torch.full((x_.shape[0],), t, device=device, dtype=torch.long), labels)

    if arm in ("additive", "additive_clip"):
        out = sample(sched, eps_fn, z, progress=False, generator=generator)
        return (out + 1.0) / 2.0 + offset, labels
    if arm in ("multiplicative", "multiplicative_noclip"):
        return sample_dale_langevin(sched, eps_fn, z, LogTransform(offset), generator=generator), labels
    raise ValueError(f"unknown arm {arm!r}")


def positivity(xpos: torch.Tensor) -> dict[str, float]:
    """Sign metrics of ``x_pos`` samples ``(N, D)`` before any clamp.

    ``neg_frac``: fraction of values ``<= 0`` (a sign violation; NaN is not counted here),
    ``neg_samples``: fraction of rows with any such value, ``nonfinite_frac``: fraction of NaN or
    infinite values, ``min_value``: the smallest value (NaN read as -10, clamped below at -10).
    """
    nonpos = xpos <= 0
    return {"neg_frac": float(nonpos.float().mean()), "neg_samples": float(nonpos.any(1).float().mean()),
            "nonfinite_frac": float((~torch.isfinite(xpos)).float().mean()),
            "min_value": float(torch.nan_to_num(xpos, nan=-10.0).clamp(min=-10.0).min())}


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    domain, scorer = ctx.setup, ctx.shared
    model, hist = train_arm(cfg, arm, domain, seed, ctx.device)
    xpos, labels = draw_positive(cfg, arm, model, domain, sample_noise(seed, 0))
    pix = torch.nan_to_num(xpos - float(cfg["offset"]), nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
    metrics = scorer.score(pix, labels, "test")
    metrics["log_fd"] = math.log(max(metrics["fd"], 1e-12))
    metrics.update(positivity(xpos))
    metrics["final_loss"] = float(hist[-1])
    series = sample_series(pix, labels, 10) if seed == 0 else {}
    return JobOutput(metrics=metrics, series=series)


def arms(cfg: dict[str, Any]) -> list[str]:
    return list(ARMS)


EXPERIMENT = Experiment(name="multiplicative_denoising_diffusion", arms=arms, setup=_setup,
                        shared=_shared, job=_job)
