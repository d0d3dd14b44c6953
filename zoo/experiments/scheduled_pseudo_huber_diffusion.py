"""Scheduled pseudo-Huber loss (Khrapov et al. 2024) at small scale: outlier resistance on the gmm domain.

The paper trains image (Stable Diffusion LoRA / DreamBooth) and audio (Grad-TTS) diffusion models on
data sets with a fraction of corrupted samples (images of another concept, noisy audio) and finds
that the pseudo-Huber loss with an exponentially decreasing ``delta(t)`` reproduces the outliers
less than the squared L2 loss while keeping the clean quality. Here, per seed:

* data: the ``gmm`` domain (:func:`zoo.experiments._diffbench.load_domain`: 3 labelled Gaussians on
  a circle); a fixed fraction ``outlier_frac`` of the training split is replaced, deterministically
  (generator seeded by ``corruption_seed``, the same for every seed and arm; labels kept), by an
  outlier cluster ``N(outlier_center, outlier_std^2 I)`` far from the clean support;
* arms ``l2`` (the epsilon-MSE of DDPM), ``ph_fixed`` (pseudo-Huber, constant ``delta = delta_T``)
  and ``ph_sched`` (pseudo-Huber, ``delta(t) = delta_0 (delta_T/delta_0)^(t/T)``,
  :mod:`zoo.diffusion.scheduled_pseudo_huber`), all through
  :func:`~zoo.experiments._diffbench.train_denoiser` on the same corrupted split with the same recipe,
  initialisation and data order (seeded by the seed);
* samples: ``samples_per_class`` unguided conditional DDPM samples per class, the same noise for
  every arm (:func:`~zoo.experiments._diffbench.sample_noise`).

Metrics (defined before the run): ``outlier_mass``, the fraction of samples within ``outlier_radius``
of the outlier centre (clean data essentially never lie there: ``real_outlier_mass`` of the clean
test split is reported); ``fd``, ``class_acc``, ``diversity`` of all samples against the CLEAN test
split (:class:`~zoo.experiments._diffbench.Scorer`); ``fd_inlier`` the same Frechet proxy over the
samples outside the outlier ball (the clean-part quality).

Departures: 2-D mixture instead of images/audio, an MLP denoiser, one corruption type (a distant
cluster), delta in units of ``sqrt(dim)`` of the residual norm (see the library module).
"""

from __future__ import annotations

from typing import Any

import functools

import torch

from zoo.diffusion.scheduled_pseudo_huber import pseudo_huber_denoising_loss
from zoo.experiment import Curve
from zoo.experiments._diffbench import RECIPES, draw, fit_scorer, load_domain, sample_noise, sample_series, train_denoiser
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band

__all__ = ["ARMS", "EXPERIMENT", "arm_loss", "corrupt", "outlier_mask", "recipe"]

ARMS = ("l2", "ph_fixed", "ph_sched")


def arms(cfg: dict[str, Any]) -> list[str]:
    return list(ARMS)


def recipe(cfg: dict[str, Any]):
    return RECIPES["gmm"].replace(epochs=int(cfg["epochs"]))


def corrupt(cfg: dict[str, Any], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A copy of ``x`` with ``round(outlier_frac * n)`` rows replaced by the outlier cluster, and their mask."""
    g = torch.Generator().manual_seed(int(cfg["corruption_seed"]))
    n = x.shape[0]
    k = int(round(float(cfg["outlier_frac"]) * n))
    idx = torch.randperm(n, generator=g)[:k]
    centre = torch.tensor(cfg["outlier_center"], dtype=x.dtype)
    out = x.clone()
    out[idx] = centre + float(cfg["outlier_std"]) * torch.randn(k, x.shape[1], generator=g, dtype=x.dtype)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[idx] = True
    return out, mask


def outlier_mask(cfg: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    centre = torch.tensor(cfg["outlier_center"], dtype=x.dtype, device=x.device)
    return (x - centre).norm(dim=1) < float(cfg["outlier_radius"])


def arm_loss(cfg: dict[str, Any], arm: str):
    """The arm's training loss (None: train_denoiser's epsilon-MSE, the L2 baseline)."""
    p = RECIPES["gmm"].p_uncond
    if arm == "l2":
        return None
    if arm == "ph_fixed":
        return functools.partial(pseudo_huber_denoising_loss, delta_0=float(cfg["delta_T"]), delta_T=None, p_uncond=p)
    if arm == "ph_sched":
        return functools.partial(pseudo_huber_denoising_loss, delta_0=float(cfg["delta_0"]),
                                 delta_T=float(cfg["delta_T"]), p_uncond=p)
    raise ValueError(f"unknown arm {arm!r}")


def _setup(cfg: dict[str, Any], env: Env) -> Any:
    dom = load_domain("gmm", env.data_dir, env.device)
    x_bad, _ = corrupt(cfg, dom.data.x_train)
    return {"domain": dom, "x_train": x_bad.to(env.device)}


def _shared(cfg: dict[str, Any], env: Env, setup: Any) -> Any:
    return fit_scorer(setup["domain"], env.device, epochs=cfg.get("scorer_epochs") or None)


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    dom, scorer = ctx.setup["domain"], ctx.shared
    rec = recipe(cfg)
    fn = arm_loss(cfg, arm)
    model, _ = train_denoiser(rec, dom, seed, ctx.device, loss=(None if fn is None else lambda m, s, x, y: fn(m, s, x, y)),
                              x_train=ctx.setup["x_train"])
    x, y = draw(model, rec, dom, None, int(cfg["samples_per_class"]), sample_noise(seed), steps=int(cfg["steps"]))
    out = outlier_mask(cfg, x)
    m = scorer.score(x, y, "test")
    inl = scorer.score(x[~out], y[~out], "test")
    xt, _ = dom.split("test")
    metrics = {"outlier_mass": float(out.float().mean()), "fd": m["fd"], "class_acc": m["class_acc"],
               "diversity": m["diversity"], "fd_inlier": inl["fd"],
               "real_outlier_mass": float(outlier_mask(cfg, xt).float().mean())}
    series = sample_series(x, y, 50) if seed == 0 else {}
    return JobOutput(metrics, series)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    series, bands = {}, {}
    xs = [float(i) for i in range(len(ARMS))]
    for metric in ("outlier_mass", "fd_inlier"):
        mean, band = mean_band([list(r) for r in zip(*[table.metric(a, metric) for a in ARMS])])
        series[metric], bands[metric] = mean, band
    return [Curve(title="per arm (0: l2, 1: ph_fixed, 2: ph_sched)", x=xs, series=series, bands=bands,
                  xlabel="arm", ylabel="value", style={k: "o-" for k in series})]


EXPERIMENT = Experiment(name="scheduled_pseudo_huber_diffusion", arms=arms, job=_job, setup=_setup, shared=_shared,
                        curves=_curves)
