"""Classifier-free guidance (Ho & Salimans, 2022) at small scale: the guidance-weight sweep.

The paper sweeps the guidance weight w of one jointly trained conditional/unconditional diffusion
model and finds that larger w raises sample quality as a classifier sees it (Inception Score) while
lowering diversity (FID first improves a little, then degrades); its Figure 2 shows the same on a
mixture of three Gaussians, one per class. We reproduce the sweep w in ``guidance_weights`` on

* ``gmm``: a labelled 2-D mixture of three overlapping isotropic Gaussians, one per class, on a
  circle (Bayes accuracy about 77% with the default radius and spread), generated from
  ``data_seed``;
* ``digits``: the 8x8 digits, scaled to [-1, 1];
* ``digits_short``: the same digits with a denoiser trained for only ``digits_short_epochs``
  (a tenth of the full budget), whose unguided samples are far from the fixed classifier's
  ceiling (the fully trained model's unguided samples already score above real test digits, so
  class consistency has no room left to rise there).

On the harness (:mod:`zoo.harness`):

* ``shared`` (once per run): per dataset, the FIXED scoring classifier (an MLP trained on the real
  training split, seeded by ``data_seed``) and its features of the real training split;
* ``per_seed`` (once per seed): one :class:`~zoo.diffusion.ConditionalDenoiser` per model
  (``gmm``, ``digits``, ``digits_short``) trained with label dropout ``p_uncond`` through
  :func:`zoo.training.train`;
* ``job`` per ``(arm, seed)``: arm ``<model>_w<w>`` draws ``samples_per_class`` samples per class
  from that seed's model with guidance weight w and scores them; arm ``<dataset>_real`` scores the
  held-out real split (a reference, the same for every seed). Every arm of a seed samples the
  same trained model from the same initial and per-step noise (seeded by the seed, not the arm),
  so w is the only difference between them.

Metrics:

* ``class_acc``: accuracy (%) of the fixed classifier against the conditioning label;
* ``diversity``: per-class spread (root mean variance over feature dimensions) of the samples
  divided by that of the real training split, averaged over classes (1 = as diverse as the data);
* ``fd``: per-class Frechet distance between Gaussian fits of samples and of the real training
  split, divided by the real class's total variance, averaged over classes (an FID analogue).

Features are the raw coordinates for ``gmm`` and the fixed classifier's penultimate layer for
``digits`` (as FID uses Inception features).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zoo.diffusion import ConditionalDenoiser, DDPMScheduler, classifier_free_guidance_loss, guided_noise_prediction
from zoo.experiment import Curve
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band
from zoo.training import MLP, TensorData, load_dataset, seed_everything, train

__all__ = [
    "EXPERIMENT",
    "Domain",
    "arm_name",
    "arms",
    "frechet_distance",
    "guided_sample",
    "make_gmm",
    "make_scheduler",
    "models",
    "parse_arm",
    "sample_metrics",
    "train_denoiser",
]

DATASETS = ("gmm", "digits")


def arm_name(model: str, w: float) -> str:
    """``gmm``, 0.5 -> ``gmm_w0_5`` (snake_case arm names for the spec)."""
    return f"{model}_w{w:g}".replace(".", "_")


def models(cfg: dict[str, Any]) -> list[tuple[str, str, int]]:
    """``(model, dataset, epochs)`` of every denoiser a seed trains.

    One per dataset with ``<dataset>_epochs``, plus ``<dataset>_short`` trained for
    ``<dataset>_short_epochs`` where that key is set (digits: the model with headroom).
    """
    out = []
    for d in cfg["datasets"]:
        if d not in DATASETS:
            raise ValueError(f"unknown dataset {d!r}; use {list(DATASETS)}")
        out.append((d, d, int(cfg[f"{d}_epochs"])))
        if cfg.get(f"{d}_short_epochs"):
            out.append((f"{d}_short", d, int(cfg[f"{d}_short_epochs"])))
    return out


def arms(cfg: dict[str, Any]) -> list[str]:
    """Every job's arm: each model at each guidance weight, then each dataset's real reference."""
    weights = [float(w) for w in cfg["guidance_weights"]]
    return [arm_name(m, w) for m, _, _ in models(cfg) for w in weights] + [f"{d}_real" for d in cfg["datasets"]]


def parse_arm(cfg: dict[str, Any], arm: str) -> tuple[str, str, float | None]:
    """``arm`` -> ``(model, dataset, w)``; ``w`` is None for a ``<dataset>_real`` arm."""
    for d in cfg["datasets"]:
        if arm == f"{d}_real":
            return d, d, None
    for m, d, _ in models(cfg):
        for w in cfg["guidance_weights"]:
            if arm == arm_name(m, float(w)):
                return m, d, float(w)
    raise ValueError(f"unknown arm {arm!r}; the config's arms are {arms(cfg)}")


def make_gmm(
    num_classes: int, radius: float, std: float, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` labelled points: class k ~ N(radius (cos 2pi k/K, sin 2pi k/K), std^2 I), equal priors."""
    ang = 2 * math.pi * torch.arange(num_classes, dtype=torch.float32) / num_classes
    means = radius * torch.stack([ang.cos(), ang.sin()], dim=1)
    y = torch.randint(num_classes, (n,), generator=generator)
    x = means[y] + std * torch.randn(n, 2, generator=generator)
    return x, y


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """``|mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2)`` between two Gaussians (float64)."""
    evals, evecs = torch.linalg.eigh(cov1)
    sqrt1 = evecs @ torch.diag(evals.clamp(min=0).sqrt()) @ evecs.T
    cross = torch.linalg.eigvalsh(sqrt1 @ cov2 @ sqrt1).clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + cov1.trace() + cov2.trace() - 2 * cross)


def _moments(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = f.double()
    mu = f.mean(0)
    d = f - mu
    return mu, d.T @ d / max(f.shape[0] - 1, 1)


@torch.no_grad()
def sample_metrics(
    x: torch.Tensor,
    c: torch.Tensor,
    classifier: Callable[[torch.Tensor], torch.Tensor],
    features: Callable[[torch.Tensor], torch.Tensor],
    ref_features: torch.Tensor,
    ref_labels: torch.Tensor,
    num_classes: int,
) -> dict[str, float]:
    """``class_acc``, ``diversity`` and ``fd`` of samples ``x`` conditioned on ``c`` (see module doc)."""
    acc = 100.0 * float((classifier(x).argmax(1) == c).double().mean())
    f = features(x)
    div, fd = [], []
    for k in range(num_classes):
        fk, rk = f[c == k], ref_features[ref_labels == k]
        mu_g, cov_g = _moments(fk)
        mu_r, cov_r = _moments(rk)
        dim = cov_r.shape[0]
        div.append(math.sqrt(float(cov_g.trace()) / dim) / math.sqrt(float(cov_r.trace()) / dim))
        fd.append(frechet_distance(mu_g, cov_g, mu_r, cov_r) / float(cov_r.trace()))
    return {"class_acc": acc, "diversity": sum(div) / len(div), "fd": sum(fd) / len(fd)}


@torch.no_grad()
def guided_sample(
    model: nn.Module,
    scheduler: DDPMScheduler,
    w: float,
    samples_per_class: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ancestral sampling with classifier-free guidance weight ``w`` (Algorithm 2), every class at once.

    ``samples_per_class`` samples of each class, conditioned on labels ``0 0 .. 1 1 ..``; the initial
    noise and every step's fresh noise come from ``generator``, so the same generator state gives
    the same noise for every ``w``. Returns samples ``(num_classes * samples_per_class, data_dim)``
    and their labels.
    """
    device = next(model.parameters()).device
    labels = torch.arange(model.num_classes, device=device).repeat_interleave(samples_per_class)
    x = torch.randn(labels.shape[0], model.data_dim, generator=generator, device=generator.device).to(device)
    for t in scheduler.timesteps:
        eps = guided_noise_prediction(model, x, int(t), labels, w)
        x = scheduler.step(eps, int(t), x, generator=generator).prev_sample
    return x, labels


def make_scheduler(cfg: dict[str, Any], clip: float | None) -> DDPMScheduler:
    """The noise schedule, set to ``sample_steps`` sampling steps."""
    sched = DDPMScheduler(
        int(cfg["train_timesteps"]),
        beta_schedule=cfg["beta_schedule"],
        variance_interp=float(cfg["variance_interp"]),
        clip_sample=clip,
    )
    sched.set_timesteps(int(cfg["sample_steps"]))
    return sched


def _diffusion_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, scheduler: DDPMScheduler, p_uncond: float
) -> torch.Tensor:
    return classifier_free_guidance_loss(model, scheduler, x, y, p_uncond=p_uncond)


# ----------------------------------------------------------------------------- setup
@dataclass
class Domain:
    """One dataset: real data in classifier space and the affine map to diffusion space.

    ``x_diffusion = x * scale + shift``; ``clip`` bounds the sampler's x_0 estimate (diffusion space).
    """

    data: TensorData
    scale: float
    shift: float
    clip: float | None

    def to_diffusion(self) -> TensorData:
        d = self.data
        return TensorData(d.x_train * self.scale + self.shift, d.y_train, d.x_test * self.scale + self.shift,
                          d.y_test, d.num_classes, d.name)

    def from_diffusion(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.shift) / self.scale
        if self.data.name == "digits":
            x = x.clamp(0.0, 1.0)  # the clipped x_0 range, back in pixel units
        return x


def _load(name: str, cfg: dict[str, Any], env: Env) -> Domain:
    if name == "gmm":
        g = torch.Generator().manual_seed(int(cfg["data_seed"]))
        kw = {"num_classes": int(cfg["gmm_classes"]), "radius": float(cfg["gmm_radius"]), "std": float(cfg["gmm_std"])}
        xtr, ytr = make_gmm(n=int(cfg["gmm_n_train"]), generator=g, **kw)
        xte, yte = make_gmm(n=int(cfg["gmm_n_test"]), generator=g, **kw)
        dev = torch.device(env.device)
        data = TensorData(xtr.to(dev), ytr.to(dev), xte.to(dev), yte.to(dev), kw["num_classes"], "gmm")
        # A generous box (never reached by real data) that only stops an untrained or strongly guided
        # model's x_0 estimate from running away at the first, noisiest steps.
        return Domain(data, 1.0, 0.0, float(cfg["gmm_clip"]))
    if name == "digits":
        # Pixels in [0, 1] for the classifier; the diffusion model works in [-1, 1] (as DDPM does for
        # images) and clips its x_0 estimate there.
        return Domain(load_dataset("digits", env.data_dir, env.device, flatten=True), 2.0, -1.0, 1.0)
    raise ValueError(f"unknown dataset {name!r}; use {list(DATASETS)}")


def _setup(cfg: dict[str, Any], env: Env) -> dict[str, Domain]:
    models(cfg)  # validates the datasets
    return {d: _load(d, cfg, env) for d in cfg["datasets"]}


# ----------------------------------------------------------------------------- shared: the fixed classifiers
def _fit_classifier(data: TensorData, cfg: dict[str, Any], device: str) -> MLP:
    """The fixed scoring classifier, trained once per dataset on the real training split."""
    g = seed_everything(int(cfg["data_seed"]))
    clf = MLP(data.x_train.shape[1], list(cfg["clf_hidden"]), data.num_classes).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=float(cfg["clf_lr"]))
    train(
        clf, data, opt, epochs=int(cfg["clf_epochs"]), batch_size=int(cfg["clf_batch_size"]), generator=g, eval_every=0
    )
    clf.eval()
    for p in clf.parameters():
        p.requires_grad_(False)
    return clf


def _features(name: str, clf: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Raw coordinates (gmm) or the fixed classifier's penultimate layer (digits)."""
    return (lambda x: x) if name == "gmm" else nn.Sequential(*list(clf.children())[:-1])


def _shared(cfg: dict[str, Any], env: Env, setup: dict[str, Domain]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, dom in setup.items():
        clf = _fit_classifier(dom.data, cfg, env.device)
        with torch.no_grad():
            ref = _features(name, clf)(dom.data.x_train)
        out[name] = {"classifier": clf, "ref_features": ref}
    return out


# ----------------------------------------------------------------------------- per seed: the denoisers
def train_denoiser(cfg: dict[str, Any], seed: int, dataset: str, epochs: int, dom: Domain, device: str) -> tuple[ConditionalDenoiser, list[float]]:
    """Algorithm 1: one denoiser trained with label dropout ``p_uncond``; returns it and its loss per epoch.

    Seeded by ``seed`` alone (not by the model's name), so ``digits`` and ``digits_short`` start
    from the same initialisation and data order.
    """
    diff = dom.to_diffusion()
    g = seed_everything(seed)
    sched = make_scheduler(cfg, dom.clip)
    model = ConditionalDenoiser(
        diff.x_train.shape[1], diff.num_classes, sched.num_train_timesteps,
        hidden=int(cfg[f"{dataset}_hidden"]), depth=int(cfg[f"{dataset}_depth"]),
    ).to(device)
    batch = int(cfg[f"{dataset}_batch_size"])
    steps = epochs * math.ceil(diff.n_train / batch)
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
    lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    loss = functools.partial(_diffusion_loss, scheduler=sched, p_uncond=float(cfg["p_uncond"]))
    hist = train(model, diff, opt, epochs=epochs, batch_size=batch, generator=g, loss=loss, scheduler=lr_sched,
                 eval_every=0)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, hist.train_loss


def _per_seed(cfg: dict[str, Any], seed: int, env: Env, setup: dict[str, Domain], shared: Any) -> dict[str, Any]:
    out = {}
    for m, d, epochs in models(cfg):
        model, losses = train_denoiser(cfg, seed, d, epochs, setup[d], env.device)
        out[m] = {"model": model, "train_loss": losses}
    return out


# ----------------------------------------------------------------------------- jobs
def sample_noise(seed: int) -> torch.Generator:
    """The sampling noise of a seed: the same for every arm (w is the only difference between arms)."""
    return torch.Generator().manual_seed(10_000 + seed)


def draw(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples of a guided arm, in classifier space, and their conditioning labels."""
    m, d, w = parse_arm(cfg, arm)
    if w is None:
        raise ValueError(f"{arm!r} is a real-data arm; it draws no samples")
    dom: Domain = ctx.setup[d]
    model = ctx.seed_state[m]["model"].to(ctx.device)
    x, labels = guided_sample(model, make_scheduler(cfg, dom.clip), w, int(cfg[f"{d}_samples_per_class"]),
                              sample_noise(seed))
    return dom.from_diffusion(x), labels


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    m, d, w = parse_arm(cfg, arm)
    dom: Domain = ctx.setup[d]
    clf = ctx.shared[d]["classifier"].to(ctx.device)
    ref = ctx.shared[d]["ref_features"].to(ctx.device)
    k = dom.data.num_classes
    if w is None:
        x, labels = dom.data.x_test, dom.data.y_test
    else:
        x, labels = draw(cfg, arm, seed, ctx)
    metrics = sample_metrics(x, labels, clf, _features(d, clf), ref, dom.data.y_train, k)
    series = {}
    if w is not None and w == float(cfg["guidance_weights"][0]):
        series["train_loss"] = list(ctx.seed_state[m]["train_loss"])  # once per model and seed
    return JobOutput(metrics=metrics, series=series)


# ----------------------------------------------------------------------------- plot
def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    weights = [float(w) for w in cfg["guidance_weights"]]
    titles = {
        "class_acc": ("Class consistency vs guidance", "fixed-classifier accuracy (%)"),
        "diversity": ("Diversity vs guidance", "per-class spread / real"),
        "fd": ("Per-class Frechet distance vs guidance", "FD / real class variance"),
    }
    n = len(table.seeds)
    curves = []
    for metric, (title, ylabel) in titles.items():
        series, bands, style = {}, {}, {}
        for j, (m, d, _) in enumerate(models(cfg)):
            vals = [table.metric(arm_name(m, w), metric) for w in weights]
            series[m] = [sum(v) / len(v) for v in vals]
            bands[m] = ([min(v) for v in vals], [max(v) for v in vals])
            style[m] = f"C{j}o-"
        for j, d in enumerate(cfg["datasets"]):
            real = table.metric(f"{d}_real", metric)[0]
            series[f"{d} real data"] = [real] * len(weights)
            style[f"{d} real data"] = f"C{j}--"
        curves.append(Curve(f"{title} ({n} seeds)", list(weights), series,
                            xlabel="guidance weight w", ylabel=ylabel, bands=bands, style=style))
    for m, _, _ in models(cfg):
        mean, band = mean_band(table.series(arm_name(m, weights[0]), "train_loss"))
        curves.append(Curve(f"{m}: denoising loss (Alg. 1)", [float(e) for e in range(1, len(mean) + 1)],
                            {"train loss": mean}, xlabel="epoch", ylabel="MSE", logy=True,
                            bands={"train loss": band}))
    return curves


EXPERIMENT = Experiment(
    name="classifier_free_guidance", arms=arms, setup=_setup, shared=_shared, per_seed=_per_seed, job=_job,
    curves=_curves,
)
