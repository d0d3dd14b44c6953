"""Classifier-free guidance (Ho & Salimans, 2022) at small scale: the guidance-weight sweep.

The paper sweeps the guidance weight w of one jointly trained conditional/unconditional diffusion
model and finds that larger w raises sample quality as a classifier sees it (Inception Score) while
lowering diversity (FID first improves a little, then degrades); its Figure 2 shows the same on a
mixture of three Gaussians, one per class. We reproduce the sweep w in ``guidance_weights`` on

* ``gmm``: a labelled 2-D mixture of three overlapping isotropic Gaussians, one per class, on a
  circle (Bayes accuracy about 77% with the default radius and spread), generated from
  ``data_seed``;
* ``digits``: the 8x8 digits, scaled to [-1, 1].

Per dataset a FIXED classifier (an MLP) is trained once on the real training split; per seed one
:class:`~zoo.diffusion.ConditionalDenoiser` is trained with label dropout ``p_uncond`` through
:func:`zoo.training.train`, and samples for every (w, class) pair are drawn in one batch. Metrics per
arm ``<dataset>_w<w>`` (and ``<dataset>_real`` for the held-out real split, a reference):

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
from typing import Any

import torch
from torch import nn

from zoo.diffusion import ConditionalDenoiser, DDPMScheduler, classifier_free_guidance_loss, guided_noise_prediction
from zoo.experiment import Curve, RunContext, RunResult, seed_values
from zoo.training import MLP, TensorData, load_dataset, seed_everything, train

__all__ = ["arm_name", "frechet_distance", "make_gmm", "run", "sample_metrics", "sample_sweep"]


def arm_name(dataset: str, w: float) -> str:
    """``gmm``, 0.5 -> ``gmm_w0_5`` (snake_case arm names for the spec)."""
    return f"{dataset}_w{w:g}".replace(".", "_")


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
def sample_sweep(
    model: ConditionalDenoiser,
    scheduler: DDPMScheduler,
    weights: list[float],
    samples_per_class: int,
    generator: torch.Generator,
    bar: Any | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ancestral sampling with guidance for every (w, class) pair in ONE batch.

    Returns samples of shape ``(len(weights), num_classes * samples_per_class, data_dim)`` and the
    conditioning labels ``(num_classes * samples_per_class,)`` shared by every w.
    """
    device = next(model.parameters()).device
    k, n = model.num_classes, samples_per_class
    labels = torch.arange(k, device=device).repeat_interleave(n)
    c = labels.repeat(len(weights))
    w = torch.tensor(weights, dtype=torch.float32, device=device).repeat_interleave(k * n)
    x = torch.randn(c.shape[0], model.data_dim, generator=generator, device=generator.device).to(device)
    for t in scheduler.timesteps:
        eps = guided_noise_prediction(model, x, int(t), c, w)
        x = scheduler.step(eps, int(t), x, generator=generator).prev_sample
        if bar is not None:
            bar.update(1)
    return x.reshape(len(weights), k * n, model.data_dim), labels


def _diffusion_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, scheduler: DDPMScheduler, p_uncond: float
) -> torch.Tensor:
    return classifier_free_guidance_loss(model, scheduler, x, y, p_uncond=p_uncond)


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


def _load(name: str, cfg: dict[str, Any], ctx: RunContext) -> tuple[TensorData, float, float, float | None]:
    """Real data in classifier space, plus the affine map to diffusion space (x * scale + shift) and the clip."""
    if name == "gmm":
        g = torch.Generator().manual_seed(int(cfg["data_seed"]))
        kw = {"num_classes": int(cfg["gmm_classes"]), "radius": float(cfg["gmm_radius"]), "std": float(cfg["gmm_std"])}
        xtr, ytr = make_gmm(n=int(cfg["gmm_n_train"]), generator=g, **kw)
        xte, yte = make_gmm(n=int(cfg["gmm_n_test"]), generator=g, **kw)
        dev = torch.device(ctx.device)
        data = TensorData(xtr.to(dev), ytr.to(dev), xte.to(dev), yte.to(dev), kw["num_classes"], "gmm")
        # A generous box (never reached by real data) that only stops an untrained or strongly guided
        # model's x_0 estimate from running away at the first, noisiest steps.
        return data, 1.0, 0.0, float(cfg["gmm_clip"])
    if name == "digits":
        # Pixels in [0, 1] for the classifier; the diffusion model works in [-1, 1] (as DDPM does for
        # images) and clips its x_0 estimate there.
        return load_dataset("digits", ctx.data_dir, ctx.device, flatten=True), 2.0, -1.0, 1.0
    raise ValueError(f"unknown dataset {name!r}; use 'gmm' or 'digits'")


def run(cfg: dict[str, Any], ctx: RunContext) -> RunResult:
    weights = [float(w) for w in cfg["guidance_weights"]]
    datasets = list(cfg["datasets"])
    per_seed: list[dict[str, dict[str, float]]] = [{} for _ in ctx.seeds]
    losses: dict[str, list[list[float]]] = {}
    for name in datasets:
        data, scale, shift, clip = _load(name, cfg, ctx)
        k = data.num_classes
        clf = _fit_classifier(data, cfg, ctx.device)
        features: Callable[[torch.Tensor], torch.Tensor] = (
            (lambda x: x) if name == "gmm" else nn.Sequential(*list(clf.children())[:-1])  # penultimate layer
        )
        ref_f = features(data.x_train)
        real = sample_metrics(data.x_test, data.y_test, clf, features, ref_f, data.y_train, k)
        diff_data = TensorData(
            data.x_train * scale + shift, data.y_train, data.x_test * scale + shift, data.y_test, k, name
        )
        epochs, batch = int(cfg[f"{name}_epochs"]), int(cfg[f"{name}_batch_size"])
        steps = epochs * math.ceil(diff_data.n_train / batch)
        losses[name] = []
        for i, seed in enumerate(ctx.seeds):
            g = seed_everything(seed)
            sched = DDPMScheduler(
                int(cfg["train_timesteps"]),
                beta_schedule=cfg["beta_schedule"],
                variance_interp=float(cfg["variance_interp"]),
                clip_sample=clip,
            )
            model = ConditionalDenoiser(
                diff_data.x_train.shape[1],
                k,
                sched.num_train_timesteps,
                hidden=int(cfg[f"{name}_hidden"]),
                depth=int(cfg[f"{name}_depth"]),
            ).to(ctx.device)
            opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
            lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
            # Algorithm 1 as the loop's loss(model, x, y).
            loss = functools.partial(_diffusion_loss, scheduler=sched, p_uncond=float(cfg["p_uncond"]))
            sched.set_timesteps(int(cfg["sample_steps"]))
            bar = ctx.bar(total=epochs + sched.num_inference_steps, desc=f"{name} seed {seed}")
            hist = train(
                model,
                diff_data,
                opt,
                epochs=epochs,
                batch_size=batch,
                generator=g,
                loss=loss,
                scheduler=lr_sched,
                eval_every=0,
                bar=bar,
            )
            losses[name].append(hist.train_loss)
            model.eval()
            sample_gen = torch.Generator().manual_seed(10_000 + seed)
            xs, labels = sample_sweep(model, sched, weights, int(cfg[f"{name}_samples_per_class"]), sample_gen, bar)
            bar.close()
            for w, x in zip(weights, xs):
                x = (x - shift) / scale
                if name == "digits":
                    x = x.clamp(0.0, 1.0)  # the clipped x_0 range, back in pixel units
                per_seed[i][arm_name(name, w)] = sample_metrics(x, labels, clf, features, ref_f, data.y_train, k)
            per_seed[i][f"{name}_real"] = real
    metrics = seed_values(per_seed)
    return RunResult(metrics=metrics, curves=_curves(metrics, datasets, weights, losses))


def _curves(
    metrics: dict[str, dict[str, list[float]]],
    datasets: list[str],
    weights: list[float],
    losses: dict[str, list[list[float]]],
) -> list[Curve]:
    titles = {
        "class_acc": ("Class consistency vs guidance", "fixed-classifier accuracy (%)"),
        "diversity": ("Diversity vs guidance", "per-class spread / real"),
        "fd": ("Per-class Frechet distance vs guidance", "FD / real class variance"),
    }
    curves = []
    for metric, (title, ylabel) in titles.items():
        series, bands, style = {}, {}, {}
        for j, name in enumerate(datasets):
            vals = [metrics[arm_name(name, w)][metric] for w in weights]
            series[name] = [sum(v) / len(v) for v in vals]
            bands[name] = ([min(v) for v in vals], [max(v) for v in vals])
            real = metrics[f"{name}_real"][metric][0]
            series[f"{name} real data"] = [real] * len(weights)
            style[name], style[f"{name} real data"] = f"C{j}o-", f"C{j}--"
        curves.append(
            Curve(title, list(weights), series, xlabel="guidance weight w", ylabel=ylabel, bands=bands, style=style)
        )
    for name, runs in losses.items():
        ep = list(range(1, len(runs[0]) + 1))
        mean = [sum(r[e] for r in runs) / len(runs) for e in range(len(ep))]
        curves.append(
            Curve(
                f"{name}: denoising loss (Alg. 1)",
                [float(e) for e in ep],
                {"train loss": mean},
                xlabel="epoch",
                ylabel="MSE",
                logy=True,
            )
        )
    return curves
