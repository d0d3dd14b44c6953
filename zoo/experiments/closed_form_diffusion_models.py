"""Closed-form diffusion models (Scarvelis, Borde & Solomon, TMLR 2025) at small scale: 8x8 digits.

No training for the closed-form arms. Per seed, every arm draws ``samples_per_class`` samples of
each digit class (class-conditional: the closed-form models use that class's training points,
the DDPM its label), all in diffusion space ([-1, 1] pixels), scored in pixel space:

* ``real``: the held-out validation digits themselves (what novelty a real sample has; the quality ceiling);
* ``cfdm``: the unsmoothed closed-form score (:func:`zoo.diffusion.closed_form.sample_cfdm`, ``sigma = 0``),
  Euler on ``steps`` uniform steps: memorises;
* ``smoothed``: the sigma-CFDM, ``M`` Monte Carlo draws of the smoothing noise per step, same
  initial noise and steps as ``cfdm``; ``sigma`` (config, diffusion space) is 1.0, picked in a seed-0
  pilot from novelty against the TRAINING digits only (no validation or test data); the
  ``smoothed_s<sigma>`` arms sweep 0.5 / 1 / 2 around it;
* ``smoothed_knn``: the same with the softmax restricted to the ``knn`` nearest training points
  (the paper's nearest-neighbour estimator, without its random extra points);
* ``ddpm``: the SHARED 30-epoch conditional DDPM (:func:`zoo.experiments._diffbench.shared_denoiser`,
  ``digits``), unguided, ancestral sampling with the same number of steps.

Metrics: ``nn_dist`` (median over samples of the Euclidean distance to the nearest TRAINING digit,
pixel units), ``novelty`` (``nn_dist`` over the real validation digits' own ``nn_dist``: 1 means
as far from the training set as fresh real digits), ``class_acc`` / ``fd`` / ``diversity``
(the fixed Scorer against the test split) and ``wall_s`` (sampling wall-clock seconds). The derived
arm ``ratio`` holds ``smoothed_vs_ddpm_wall`` = smoothed.wall_s / ddpm.wall_s per seed.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from zoo.diffusion.closed_form import sample_cfdm
from zoo.experiment import Curve
from zoo.experiments._diffbench import (RECIPES, draw, fit_scorer, load_domain, sample_noise, sample_series,
                                        shared_denoiser)
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table

__all__ = ["EXPERIMENT", "arms", "arm_sigma", "median_nn_dist", "sample_arm"]

def _tag(sigma: float) -> str:
    return f"{float(sigma):g}".replace(".", "_")


def arms(cfg: dict[str, Any]) -> list[str]:
    """``real``, ``cfdm``, one ``smoothed_s<sigma>`` per ``sigmas``, ``smoothed``, ``smoothed_knn``, ``ddpm``."""
    return ["real", "cfdm", *[f"smoothed_s{_tag(s)}" for s in cfg["sigmas"]], "smoothed", "smoothed_knn", "ddpm"]


def arm_sigma(cfg: dict[str, Any], arm: str) -> float:
    """The smoothing sigma (diffusion space) of a closed-form arm (0 for ``cfdm``)."""
    if arm == "cfdm":
        return 0.0
    if arm in ("smoothed", "smoothed_knn"):
        return float(cfg["sigma"])
    for s in cfg["sigmas"]:
        if arm == f"smoothed_s{_tag(s)}":
            return float(s)
    raise ValueError(f"unknown arm {arm!r}")


def median_nn_dist(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Median over rows of ``x`` of the Euclidean distance to the nearest row of ``ref``."""
    return float(torch.cdist(x, ref).min(dim=1).values.median())


def _setup(cfg: dict[str, Any], env: Env) -> dict[str, Any]:
    dom = load_domain("digits", env.data_dir, env.device)
    xtr, _ = dom.split("train")
    xva, yva = dom.split("val")
    return {"domain": dom, "real_nn": median_nn_dist(xva, xtr)}


def _shared(cfg: dict[str, Any], env: Env, setup: dict[str, Any]) -> Any:
    return fit_scorer(setup["domain"], env.device, epochs=cfg.get("scorer_epochs") or None)


def sample_arm(cfg: dict[str, Any], arm: str, seed: int, setup: dict[str, Any], device: str = "cpu",
               model: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples_per_class`` samples of every class for ``arm`` (pixel space) and their labels.

    Every sampling arm of a seed starts from the same generator, ``sample_noise(seed)``.
    """
    dom = setup["domain"]
    per = int(cfg["samples_per_class"])
    if arm == "real":
        xva, yva = dom.split("val")
        keep = torch.cat([torch.nonzero(yva == k).flatten()[:per] for k in range(dom.num_classes)])
        return xva[keep], yva[keep]
    g = sample_noise(seed, 0)
    if arm == "ddpm":
        return draw(model, RECIPES["digits"], dom, None, per, g, steps=int(cfg["steps"]))
    xtr, ytr = dom.split("train")
    sigma = arm_sigma(cfg, arm)
    knn = int(cfg["knn"]) if arm == "smoothed_knn" else None
    xs, ys = [], []
    for k in range(dom.num_classes):
        data = dom.to_diffusion(xtr[ytr == k])
        x = sample_cfdm(data, per, steps=int(cfg["steps"]), sigma=sigma, m=int(cfg["m"]), generator=g, knn=knn)
        xs.append(dom.from_diffusion(x))
        ys.append(torch.full((per,), k, dtype=torch.long, device=x.device))
    return torch.cat(xs), torch.cat(ys)


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    setup, scorer = ctx.setup, ctx.shared
    dom = setup["domain"]
    model = shared_denoiser("digits", seed, dom, ctx.device) if arm == "ddpm" else None
    t0 = time.perf_counter()
    x, labels = sample_arm(cfg, arm, seed, setup, ctx.device, model)
    wall = time.perf_counter() - t0 if arm != "real" else 0.0
    nn = median_nn_dist(x, dom.split("train")[0])
    metrics = {"nn_dist": nn, "novelty": nn / float(setup["real_nn"]), "wall_s": wall,
               "sigma": arm_sigma(cfg, arm) if arm not in ("real", "ddpm") else 0.0}
    metrics.update(scorer.score(x, labels, "test"))
    series = sample_series(x, labels, 4) if seed == 0 else {}
    return JobOutput(metrics, series)


def _derive(cfg: dict[str, Any], table: Table) -> dict[str, dict[str, list[float]]]:
    s, d = table.metric("smoothed", "wall_s"), table.metric("ddpm", "wall_s")
    return {"ratio": {"smoothed_vs_ddpm_wall": [a / max(b, 1e-9) for a, b in zip(s, d)]}}


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    """Novelty against class accuracy per arm (seed means)."""
    import statistics

    names = arms(cfg)
    xs = [float(i) for i in range(len(names))]
    nov = [statistics.fmean(table.metric(a, "novelty")) for a in names]
    acc = [statistics.fmean(table.metric(a, "class_acc")) / 100.0 for a in names]
    return [Curve(title="novelty (nn distance / real's) and class acc / 100 per arm ("
                  + ", ".join(f"{i}: {a}" for i, a in enumerate(names)) + ")",
                  x=xs, series={"novelty": nov, "class_acc": acc}, xlabel="arm", ylabel="value",
                  style={"novelty": "o-", "class_acc": "s-"})]


EXPERIMENT = Experiment(name="closed_form_diffusion_models", arms=arms, job=_job, setup=_setup, shared=_shared,
                        derive=_derive, curves=_curves)
