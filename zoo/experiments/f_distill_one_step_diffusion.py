"""f-distill (Xu, Nie & Vahdat, 2025) at small scale: one-step distillation of an EXACT 2-D mixture teacher.

The paper distils a multi-step diffusion teacher into a one-step generator ``x = G_θ(z)`` by
minimising ``D_f(p_t || q_t)`` between the noised teacher and student marginals; the gradient
(their eq. 6, :mod:`zoo.diffusion.f_distill`) is

    ∇_θ D_f = E_{z,ε,t}[ w_t h(r_t(x_t)) (s_q(x_t,t) - s_p(x_t,t))ᵀ ∂x_t/∂θ ],   h(r) = f''(r) r²,

with ``r_t = p_t/q_t`` from a discriminator's logit, ``s_q`` a fake score network trained by
denoising score matching on generated samples, and ``s_p`` the teacher's score. Reverse KL
(``h = 1``) is DMD / variational score distillation, which the paper calls mode-seeking; forward KL
(``h = r``) and Jensen-Shannon (``h = r/(1+r)``) up-weight samples where the teacher has more mass.

Here, per seed:

* teacher ``p``: an 8-component isotropic Gaussian mixture on a circle (``radius``, ``std``) with
  UNEQUAL weights (the recorded config alternates 22% and 3% components; with equal weights every
  arm covered every mode in an earlier pilot, leaving no room for a mode-coverage difference), whose
  noised score ``s_p = ∇ log p_t`` is exact (:meth:`zoo.diffusion.analytic.GaussianMixture.score_t`):
  no teacher network, so teacher error cannot decide anything;
* arms ``reverse_kl`` (DMD), ``js``, ``forward_kl``: the SAME generator/fake-score/discriminator
  initialisation (built under ``manual_seed(seed)`` before the arm is looked at), the same optimisers,
  number of steps, batch size, time schedule and time weighting, the same noise stream; only the
  weighting ``h`` differs. The discriminator is trained in every arm (reverse KL ignores its logit);
  its "real" samples are exact draws from the mixture (the paper uses real data / teacher samples);
* schedule: ``t ~ U(t_min, t_max)``, ``ᾱ_t = cos²(π t / 2)``; time weight ``w_t = 1 - ᾱ_t`` (the
  usual SDS/VSD weighting, so the gradient is ``σ_t (ε_q - ε_p)``-sized); per generator step,
  ``fake_steps`` fake-score updates and one discriminator update (DMD2-style two time-scale rule).

Metrics, on fresh samples (``n_eval`` generator draws from a fresh latent stream and ``n_eval`` fresh
exact mixture draws, both seeded apart from training):

* ``modes``: components recovered, of 8: component ``k`` counts when at least ``mode_frac · π_k`` of
  the generated samples lie within ``mode_radius_std`` standard deviations of its mean (nearest mean);
* ``low_modes``: the same count over the low-weight components (``π_k < 1/K``) only;
* ``low_mass``: the generated share near low-weight components;
* ``mass_tv``: total variation between the generated and the exact draws' histograms over ``K + 1``
  bins (each component's disc, and the rest): a recall-like mode-mass error;
* ``energy``: energy distance (:func:`zoo.diffusion.analytic.energy_distance`) to the exact draws;
* ``quality``: share of generated samples within ``mode_radius_std`` std of some mean (precision).

Departures from the paper: no image data, no teacher network (exact score), no GAN term on the
generator, a plain MLP discriminator on ``(x_t, t)`` instead of a head on the teacher's features,
a randomly initialised generator (the paper starts it from the teacher), and only the batch-mean
normalisation of ``h`` (not their second, running normalisation). The distillation loop is written
here: ``_diffbench`` has no distillation recipe.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from zoo.diffusion.analytic import GaussianMixture, energy_distance
from zoo.diffusion.f_distill import discriminator_loss, fake_score_loss, generator_loss
from zoo.harness import Env, Experiment, JobContext, JobOutput

__all__ = ["EXPERIMENT", "ARMS", "teacher", "build_nets", "distill", "evaluate", "abar_of"]

ARMS = ("reverse_kl", "js", "forward_kl")


def arms(cfg: dict[str, Any]) -> list[str]:
    return list(cfg.get("arms", ARMS))


def teacher(cfg: dict[str, Any]) -> GaussianMixture:
    """The exact mixture: ``modes`` means on a circle of ``radius``, isotropic ``std``, ``weights`` (uniform if absent)."""
    k = int(cfg["modes"])
    ang = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    means = float(cfg["radius"]) * torch.stack([ang.cos(), ang.sin()], -1)
    w = cfg.get("weights")
    weights = None if w is None else torch.tensor([float(v) for v in w], dtype=torch.float64)
    if weights is not None and weights.numel() != k:
        raise ValueError(f"weights has {weights.numel()} entries for {k} modes")
    return GaussianMixture(means, stds=float(cfg["std"]), weights=weights)


def _shares(cfg: dict[str, Any], gm: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """Share of ``x`` within ``mode_radius_std`` std of each mean (nearest mean), plus a last bin: the rest."""
    dist, comp = torch.cdist(x.double(), gm.means).min(1)
    near = dist <= float(cfg["mode_radius_std"]) * float(cfg["std"])
    k = gm.num_components
    counts = torch.bincount(comp[near], minlength=k).double()
    return torch.cat([counts, (~near).sum().double().reshape(1)]) / x.shape[0]


def _mlp(d_in: int, d_out: int, hidden: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.SiLU()]
        d = hidden
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


class TimeNet(nn.Module):
    """MLP on ``(x_t, log-SNR features)``; ``kind='eps'`` returns a score ``-ε̂/σ_t``, ``'logit'`` one logit."""

    def __init__(self, d: int, hidden: int, depth: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.net = _mlp(d + 2, d if kind == "eps" else 1, hidden, depth)

    def forward(self, x: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
        a = abar.reshape(-1, 1).to(x)
        lsnr = (a / (1 - a)).log() / 8.0
        out = self.net(torch.cat([x, lsnr, (1 - a).sqrt()], -1))
        if self.kind == "eps":
            return -out / (1 - a).sqrt()
        return out.reshape(-1)


def build_nets(cfg: dict[str, Any], seed: int) -> tuple[nn.Module, TimeNet, TimeNet]:
    """Generator, fake score and discriminator, initialised from ``seed`` only (identical for every arm)."""
    torch.manual_seed(seed)
    h, dep = int(cfg["hidden"]), int(cfg["depth"])
    gen = _mlp(2, 2, h, dep)
    fake = TimeNet(2, h, dep, "eps")
    disc = TimeNet(2, h, dep, "logit")
    return gen, fake, disc


def abar_of(t: torch.Tensor) -> torch.Tensor:
    """``ᾱ_t = cos²(π t / 2)`` (a cosine VP schedule on t in (0, 1))."""
    return torch.cos(0.5 * math.pi * t).pow(2)


def distill(cfg: dict[str, Any], divergence: str, seed: int) -> nn.Module:
    """Run f-distill with weighting ``divergence``; every random stream depends on ``seed`` only."""
    gm = teacher(cfg)
    gen, fake, disc = build_nets(cfg, seed)
    g = torch.Generator().manual_seed(10_000 + seed)
    lr = float(cfg["lr"])
    betas = (0.0, 0.99)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=betas)
    opt_f = torch.optim.Adam(fake.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=betas)
    bs, t0, t1 = int(cfg["batch_size"]), float(cfg["t_min"]), float(cfg["t_max"])

    def draw_t(n: int) -> torch.Tensor:
        return abar_of(t0 + (t1 - t0) * torch.rand(n, generator=g))

    def noise(x0: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return a.sqrt()[:, None] * x0 + (1 - a).sqrt()[:, None] * torch.randn(x0.shape, generator=g)

    for _ in range(int(cfg["steps"])):
        for _ in range(int(cfg["fake_steps"])):
            with torch.no_grad():
                x0 = gen(torch.randn(bs, 2, generator=g))
            opt_f.zero_grad()
            fake_score_loss(fake, x0, draw_t(bs), generator=g).backward()
            opt_f.step()
        # discriminator: exact teacher draws (label 1) vs generated (label 0), same noise level per pair
        with torch.no_grad():
            x0 = gen(torch.randn(bs, 2, generator=g))
        real = gm.sample(bs, g).float()
        a = draw_t(bs)
        opt_d.zero_grad()
        discriminator_loss(disc(noise(real, a), a), disc(noise(x0, a), a)).backward()
        opt_d.step()
        # generator
        a = draw_t(bs)
        x_t = noise(gen(torch.randn(bs, 2, generator=g)), a)
        with torch.no_grad():
            s_p = gm.score_t(x_t.detach(), a.double()).float()
            s_q = fake(x_t.detach(), a)
            log_r = disc(x_t.detach(), a)
        opt_g.zero_grad()
        generator_loss(x_t, s_p, s_q, log_r, divergence, time_weight=1 - a).backward()
        opt_g.step()
    return gen


@torch.no_grad()
def evaluate(cfg: dict[str, Any], x: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Mode coverage, precision and energy distance of generated ``x`` against exact draws ``ref``."""
    gm = teacher(cfg)
    x = x.double()
    k = gm.num_components
    pi = gm.weights.double()
    got, want = _shares(cfg, gm, x), _shares(cfg, gm, ref.double())
    share = got[:k]
    found = share >= float(cfg["mode_frac"]) * pi
    low = pi < 1.0 / k
    return {
        "modes": float(found.sum()),
        "low_modes": float((found & low).sum()),
        "low_mass": float(share[low].sum()),
        "mass_tv": float(0.5 * (got - want).abs().sum()),
        "energy": float(energy_distance(x, ref)),
        "quality": float(share.sum()),
    }


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}")
    gen = distill(cfg, arm, seed)
    ge = torch.Generator().manual_seed(777_000 + seed)  # fresh latents and fresh exact draws
    n = int(cfg["n_eval"])
    with torch.no_grad():
        x = gen(torch.randn(n, 2, generator=ge))
    ref = teacher(cfg).sample(n, ge)
    series = {"samples": [round(v, 3) for v in x[:300].reshape(-1).tolist()]} if seed == 0 else {}
    return JobOutput(evaluate(cfg, x, ref), series)


def _setup(cfg: dict[str, Any], env: Env) -> Any:
    return None


EXPERIMENT = Experiment(name="f_distill_one_step_diffusion", arms=arms, job=_job, setup=_setup)
