"""Adapt-then-Unlearn (Tiwary et al., TMLR) at small scale: forgetting one digit class of an MLP GAN.

The paper unlearns a class (MNIST, AFHQ) or an attribute (CelebA-HQ) from a pretrained StyleGAN2:
stage 1 adapts a copy to a few user-given negative samples with an EWC regulariser
(:func:`zoo.unlearning.adapt_then_unlearn.ewc_penalty`), stage 2 trains the original on positive
samples with a repulsion term pushing its parameters away from the adapted ones (EL2 / NL2 / IL2,
:func:`~zoo.unlearning.adapt_then_unlearn.repulsion_loss`). Here, per seed:

* **pretrained GAN** (``per_seed``): an MLP generator (latent ``latent`` -> ``hidden`` x2 -> 64,
  sigmoid pixels) and MLP discriminator, non-saturating loss, Adam, ``pretrain_steps`` steps on the
  8x8 digits training split (:func:`zoo.experiments._diffbench.load_domain`), all ten classes;
* **stage 1** (``per_seed``, shared by every arm): a copy of G and D trained ``adapt_steps`` steps on
  ``n_negatives`` training images of ``forget_class`` with ``ewc_lambda * sum F~ (theta - theta_G)^2``
  (the Fisher ``F`` at ``theta_G`` divided by its mean, so ``ewc_lambda`` is scale-free): ``theta_N``;
* **stage 2** (one job per arm): the ORIGINAL G and D trained ``unlearn_steps`` steps on the
  training images of the retained classes (the positives), with ``gamma * L_repulsion(d^2 / d0^2)``,
  ``d0^2 = ||theta_G - theta_N||^2`` (per-tensor mean squares, as the authors' code), for the arms
  ``atu_el2`` / ``atu_nl2`` / ``atu_il2``; ``retain_ft`` is the same stage 2 with ``gamma = 0`` (the
  baseline: plain fine-tuning on the positives, same steps, data order, optimiser and init).
  ``original`` and ``adapted`` are the pretrained and stage-1 generators, unchanged.

Departures: an MLP GAN on 8x8 digits instead of StyleGAN2 on MNIST/AFHQ/CelebA-HQ; positives and
negatives are REAL training images of the retained / forgotten classes (the paper uses
samples of the pretrained GAN that the user labels); a fixed step budget (no checkpoint selection)
and the repulsion distance normalised by its starting value.

Metrics (``n_eval`` samples from fixed latents, the same for every arm of a seed, classified by the
fixed :class:`~zoo.experiments._diffbench.Scorer`): ``forget_share`` (% classified as the forgotten
class), ``fd_retain`` (Frechet distance, in the scorer's penultimate features, between the samples
NOT classified as the forgotten class and the real test images of the retained classes), ``fd_ratio``
(``fd_retain`` over the original generator's, same seed), ``retain_acc`` (% of the retained
samples whose scorer confidence exceeds 0.9: a class-consistency proxy), ``rel_dist`` (final
``d^2 / d0^2``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from zoo.experiment import Curve
from zoo.experiments._diffbench import fit_scorer, load_domain
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

__all__ = ["EXPERIMENT", "ARMS", "arms", "make_gan", "pretrain", "adapt", "unlearn", "evaluate", "frechet"]

ARMS = ("original", "adapted", "retain_ft", *(f"atu_{r}" for r in REPULSIONS))


def arms(cfg: dict[str, Any]) -> list[str]:
    return list(ARMS)


class Generator(nn.Module):
    def __init__(self, latent: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.latent = latent
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, dim), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def make_gan(cfg: dict[str, Any], dim: int, device: str) -> tuple[Generator, nn.Module]:
    h = int(cfg["hidden"])
    gen = Generator(int(cfg["latent"]), h, dim).to(device)
    disc = nn.Sequential(nn.Linear(dim, h), nn.LeakyReLU(0.2), nn.Linear(h, h), nn.LeakyReLU(0.2),
                         nn.Linear(h, 1), nn.Flatten(0)).to(device)
    return gen, disc


def _opts(cfg: dict[str, Any], gen: nn.Module, disc: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    lr = float(cfg["lr"])
    return (torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999)),
            torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999)))


def _train(cfg: dict[str, Any], gen: nn.Module, disc: nn.Module, x: torch.Tensor, steps: int,
           g: torch.Generator, g_reg: Any = None) -> None:
    g_opt, d_opt = _opts(cfg, gen, disc)
    bs = min(int(cfg["batch_size"]), x.shape[0])
    latent = lambda n: torch.randn(n, gen.latent, generator=g).to(x.device)  # noqa: E731
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (bs,), generator=g).to(x.device)
        gan_step(gen, disc, g_opt, d_opt, x[idx], latent, g_reg)


def pretrain(cfg: dict[str, Any], x: torch.Tensor, seed: int, device: str) -> tuple[nn.Module, nn.Module]:
    seed_everything(seed)
    gen, disc = make_gan(cfg, x.shape[1], device)
    _train(cfg, gen, disc, x, int(cfg["pretrain_steps"]), torch.Generator().manual_seed(seed))
    return gen, disc


def adapt(cfg: dict[str, Any], gen: nn.Module, disc: nn.Module, negatives: torch.Tensor, seed: int) -> nn.Module:
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


def unlearn(cfg: dict[str, Any], gen: nn.Module, disc: nn.Module, adapted: nn.Module, positives: torch.Tensor,
            kind: str | None, seed: int) -> tuple[nn.Module, float]:
    """Stage 2 on copies of the ORIGINAL (G, D); ``kind=None`` is the no-repulsion baseline.

    Returns the generator and its final ``d^2 / d0^2``.
    """
    g = torch.Generator().manual_seed(20_000 + seed)  # the same data order and latents for every arm
    gen_u, disc_u = copy.deepcopy(gen), copy.deepcopy(disc)
    theta_n = snapshot(adapted)
    d0 = float(param_sq_distance(gen, theta_n))
    gamma, alpha = float(cfg["gamma"][kind]) if kind else 0.0, float(cfg["alpha"])
    reg = None
    if kind is not None:
        reg = lambda: gamma * repulsion_loss(param_sq_distance(gen_u, theta_n), kind, alpha=alpha, scale=d0)  # noqa: E731
    _train(cfg, gen_u, disc_u, positives, int(cfg["unlearn_steps"]), g, reg)
    return gen_u, float(param_sq_distance(gen_u, theta_n)) / d0


def frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance of Gaussian fits of two feature sets (float64, eigen-decomposition square roots)."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = torch.cov(a.T), torch.cov(b.T)

    def sqrtm(m: torch.Tensor) -> torch.Tensor:
        w, v = torch.linalg.eigh((m + m.T) / 2)
        return (v * w.clamp_min(0).sqrt()) @ v.T

    s = sqrtm(ca)
    cross = sqrtm(s @ cb @ s)
    return float((mu_a - mu_b).pow(2).sum() + torch.trace(ca) + torch.trace(cb) - 2 * torch.trace(cross))


@torch.no_grad()
def evaluate(cfg: dict[str, Any], gen: nn.Module, scorer: Any, seed: int, reference: str = "test") -> dict[str, float]:
    z = torch.randn(int(cfg["n_eval"]), gen.latent, generator=torch.Generator().manual_seed(30_000 + seed))
    x = gen(z.to(next(gen.parameters()).device))
    prob = torch.softmax(scorer.classifier(x), 1)
    pred = prob.argmax(1)
    k = int(cfg["forget_class"])
    keep = pred != k
    rx, ry = scorer.domain.split(reference)
    real = scorer.features(rx[ry != k])
    fd = frechet(scorer.features(x[keep]), real) if int(keep.sum()) > 2 else float("nan")
    return {"forget_share": 100.0 * float((~keep).double().mean()), "fd_retain": fd,
            "retain_acc": 100.0 * float((prob[keep].max(1).values > 0.9).double().mean()) if keep.any() else 0.0}


def _setup(cfg: dict[str, Any], env: Env) -> Any:
    return load_domain("digits", env.data_dir, env.device)


def _shared(cfg: dict[str, Any], env: Env, domain: Any) -> Any:
    return fit_scorer(domain, env.device, epochs=cfg.get("scorer_epochs"))


def _per_seed(cfg: dict[str, Any], seed: int, env: Env, domain: Any, scorer: Any) -> dict[str, Any]:
    x, y = domain.split("train")
    k = int(cfg["forget_class"])
    gen, disc = pretrain(cfg, x, seed, env.device)
    neg_idx = torch.nonzero(y == k).flatten()
    pick = torch.randperm(len(neg_idx), generator=torch.Generator().manual_seed(40_000 + seed))[: int(cfg["n_negatives"])]
    gen_n = adapt(cfg, gen, disc, x[neg_idx[pick]], seed)
    return {"gen": gen, "disc": disc, "adapted": gen_n, "original_fd": evaluate(cfg, gen, scorer, seed)["fd_retain"]}


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    st, scorer, domain = ctx.seed_state, ctx.shared, ctx.setup
    x, y = domain.split("train")
    positives = x[y != int(cfg["forget_class"])]
    rel = 0.0
    if arm == "original":
        gen = st["gen"]
        rel = 1.0
    elif arm == "adapted":
        gen = st["adapted"]
    elif arm == "retain_ft" or arm.startswith("atu_"):
        kind = None if arm == "retain_ft" else arm.removeprefix("atu_")
        gen, rel = unlearn(cfg, st["gen"], st["disc"], st["adapted"], positives, kind, seed)
    else:
        raise ValueError(f"unknown arm {arm!r}")
    m = evaluate(cfg, gen, scorer, seed)
    m["fd_ratio"] = m["fd_retain"] / st["original_fd"]
    m["rel_dist"] = rel
    return JobOutput(m)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    xs = [float(i) for i in range(len(ARMS))]
    series = {}
    for metric in ("forget_share", "fd_ratio"):
        series[metric] = [sum(v) / len(v) for v in (table.metric(a, metric) for a in ARMS)]
    return [Curve(title="forget share (%) and retained FD ratio per arm (" + ", ".join(f"{i}: {a}" for i, a in enumerate(ARMS)) + ")",
                  x=xs, series=series, xlabel="arm", ylabel="value", style={k: "o" for k in series})]


EXPERIMENT = Experiment(name="adapt_then_unlearn_gan", arms=arms, job=_job, setup=_setup, shared=_shared,
                        per_seed=_per_seed, curves=_curves)
