"""Classifier-free guidance is a predictor-corrector (Bradley & Nakkiran 2024), on an exact 1-D mixture.

The paper's Section 3 shows, with exact counterexamples, that CFG-DDPM and CFG-DDIM sample
different distributions and that neither samples the gamma-powered (tilted) distribution
``p(x|c)^gamma p(x)^(1-gamma)``; Section 4 proves that in the SDE limit CFG-DDPM equals PCG: a
DDIM predictor for the conditional plus one Langevin corrector step on the ``gamma' = 2 gamma - 1``
powered noised marginal. No network is needed: every score is exact
(:mod:`zoo.diffusion.analytic`, :mod:`zoo.diffusion.cfg_predictor_corrector`), so the distances
below measure the samplers, not a model's error.

Setting (config): a 1-D Gaussian mixture (``means``, ``std``, ``labels``; class ``c`` has one
component, the other class two, one of which overlaps class c), guidance strength ``gamma``, ``n``
samples per arm, the zoo's linear-beta 1000-step VP schedule respaced to each arm's step count.

Per seed (``per_seed``, shared by that seed's arms, generators seeded by the seed):

* ``tilted``: ``n`` near-exact draws from the gamma-powered target (grid inverse CDF,
  :meth:`~zoo.diffusion.analytic.TiltedTarget.sample`), a second independent ``n`` draws
  (``tilted_twin``: the sampling-noise floor of W1 at this ``n``), and ``n`` draws of the
  conditional ``p(x|c)`` (how far guidance moves the target: the headroom);
* ``reference``: CFG-DDPM at ``reference_steps`` steps, the sampler PCG should approach.

Arms (each draws its own samples with its own generator, seeded by (seed, arm)):

* ``exact``: the twin draws of the tilted target (the floor of every distance);
* ``cfg_ddpm``: CFG-DDPM at ``reference_steps`` (independent of the reference's draws);
* ``cfg_ddim``: CFG-DDIM (eta = 0) at ``reference_steps``;
* ``pcg_<k>`` for ``k`` in ``pcg_steps``: PCG-DDIM at k steps, gamma' = 2 gamma - 1, one Langevin
  step of size ``1 - abar_t / abar_s`` (the equivalence's parameters);
* ``pcg_naive``: PCG-DDIM at ``reference_steps`` with the corrector's power gamma' = gamma (the
  "obvious" but wrong power): the control that the specific gamma' matters.

Metrics (exact 1-D W1 between empirical distributions, :func:`~zoo.diffusion.analytic.wasserstein_1d`):
``w1_tilted`` (to the tilted draws), ``w1_ddpm`` (to the per-seed CFG-DDPM reference), ``w1_cond``
(to the conditional draws), ``mean`` and ``std`` of the arm's samples.

Departures: VP and discrete time instead of the paper's VE and continuous time (see the library
module); one mixture and one gamma; no SDXL / ImageNet experiments (the paper's Section 5 images).
"""

from __future__ import annotations

import zlib
from typing import Any

import torch

from zoo.diffusion.analytic import GaussianMixture, TiltedTarget, wasserstein_1d
from zoo.diffusion.cfg_predictor_corrector import cfg_sample, pcg_gamma, pcg_sample
from zoo.experiment import Curve
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band

__all__ = ["EXPERIMENT", "arm_samples", "arms", "mixture"]


def arms(cfg: dict[str, Any]) -> list[str]:
    return ["exact", "cfg_ddpm", "cfg_ddim", *[f"pcg_{k}" for k in cfg["pcg_steps"]], "pcg_naive"]


def mixture(cfg: dict[str, Any]) -> GaussianMixture:
    return GaussianMixture(torch.tensor(cfg["means"], dtype=torch.float64)[:, None], stds=float(cfg["std"]),
                           labels=torch.tensor(cfg["labels"]))


def _generator(seed: int, name: str) -> torch.Generator:
    # one stream per (seed, arm): crc32 is stable across processes, unlike hash()
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + zlib.crc32(name.encode()))


def arm_samples(cfg: dict[str, Any], arm: str, seed: int) -> torch.Tensor:
    """The arm's ``n`` samples, shape ``(n,)`` (float64)."""
    gm, c, gamma, n = mixture(cfg), int(cfg["c"]), float(cfg["gamma"]), int(cfg["n"])
    ref_steps = int(cfg["reference_steps"])
    g = _generator(seed, arm)
    if arm == "exact":
        x = TiltedTarget(gm.conditional(c), gm, gamma).sample(n, g)
    elif arm in ("cfg_ddpm", "cfg_ddim"):
        x = cfg_sample(gm, c, gamma, ref_steps, n, arm.removeprefix("cfg_"), g)  # type: ignore[arg-type]
    elif arm == "pcg_naive":
        x = pcg_sample(gm, c, gamma, ref_steps, n, generator=g)
    elif arm.startswith("pcg_"):
        x = pcg_sample(gm, c, pcg_gamma(gamma), int(arm.removeprefix("pcg_")), n, generator=g)
    else:
        raise ValueError(f"unknown arm {arm!r}")
    return x[:, 0]


def _per_seed(cfg: dict[str, Any], seed: int, env: Env, setup: Any, shared: Any) -> dict[str, torch.Tensor]:
    gm, c, gamma, n = mixture(cfg), int(cfg["c"]), float(cfg["gamma"]), int(cfg["n"])
    return {
        "tilted": TiltedTarget(gm.conditional(c), gm, gamma).sample(n, _generator(seed, "tilted"))[:, 0],
        "cond": gm.conditional(c).sample(n, _generator(seed, "cond"))[:, 0],
        "reference": cfg_sample(gm, c, gamma, int(cfg["reference_steps"]), n, "ddpm", _generator(seed, "reference"))[:, 0],
    }


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    ref = ctx.seed_state
    x = arm_samples(cfg, arm, seed)
    metrics = {
        "w1_tilted": float(wasserstein_1d(x, ref["tilted"])),
        "w1_ddpm": float(wasserstein_1d(x, ref["reference"])),
        "w1_cond": float(wasserstein_1d(x, ref["cond"])),
        "mean": float(x.mean()),
        "std": float(x.std()),
    }
    lo, hi, bins = float(cfg["hist_lo"]), float(cfg["hist_hi"]), int(cfg["hist_bins"])
    h = torch.histc(x.float(), bins=bins, min=lo, max=hi)  # the samples' histogram (density per bin) for the page
    return JobOutput(metrics, {"density": (h / (h.sum() * (hi - lo) / bins)).tolist()})


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    lo, hi, bins = float(cfg["hist_lo"]), float(cfg["hist_hi"]), int(cfg["hist_bins"])
    centres = [lo + (i + 0.5) * (hi - lo) / bins for i in range(bins)]
    shown = [a for a in ("exact", "cfg_ddpm", "cfg_ddim", f"pcg_{max(cfg['pcg_steps'])}") if a in table]
    dens = {a: table.series(a, "density")[0] for a in shown}
    curves = [Curve(title=f"first seed's samples, gamma = {cfg['gamma']} (exact: the tilted target)", x=centres,
                    series=dens, xlabel="x", ylabel="density", style={a: "-" for a in dens})]
    steps = [int(k) for k in cfg["pcg_steps"]]
    mean, band = mean_band([list(r) for r in zip(*[table.metric(f"pcg_{k}", "w1_ddpm") for k in steps])])
    curves.append(Curve(title="PCG (gamma' = 2 gamma - 1) approaches CFG-DDPM as steps grow", x=[float(k) for k in steps],
                        series={"W1(PCG, CFG-DDPM)": mean}, bands={"W1(PCG, CFG-DDPM)": band}, xlabel="PCG steps",
                        ylabel="W1", logx=True, style={"W1(PCG, CFG-DDPM)": "o-"}))
    return curves


EXPERIMENT = Experiment(name="cfg_predictor_corrector", arms=arms, job=_job, per_seed=_per_seed, curves=_curves)
