"""TFG: unified training-free guidance, with DPS, LGD, FreeDoM, MPGD and UGD as settings.

Haotian Ye, Haowei Lin, Jiaqi Han, Minkai Xu, Sheng Liu, Yitao Liang, Jianzhu Ma, James Zou,
Stefano Ermon, "TFG: Unified Training-Free Guidance for Diffusion Models", NeurIPS 2024,
https://arxiv.org/abs/2409.15761; the authors' code: https://github.com/YWolfeee/Training-Free-Guidance
(``methods/tfg.py``, read for the step below; none of it is copied).

An UNCONDITIONAL denoiser ``eps(x_t, t)`` is steered towards a target ``c`` by an off-the-shelf
predictor ``f_c(x_0)`` of CLEAN data (here a classifier's ``log p(c | x_0)``), never trained on
noisy inputs. One sampling step from ``t`` to its successor ``s`` (Algorithm 1; ``alpha_t =
alpha-bar_t / alpha-bar_s``)::

    f~_c(x)  = log E_{d ~ N(0, I)} exp f_c(x + gamma_t d)            (implicit dynamics: Gaussian-smoothed
                                                                       predictor, M Monte-Carlo draws)
    repeat N_recur times:
        x0_hat  = (x_t - sqrt(1 - abar_t) eps(x_t, t)) / sqrt(abar_t)
        Delta_t = rho_t grad_{x_t} f~_c(x0_hat(x_t))                    (mean guidance, through the denoiser)
        Delta_0 = 0;  repeat N_iter times:
            Delta_0 += mu_t grad_{x_0} f~_c(x0_hat + Delta_0)           (variance guidance, on x0_hat only)
        x_s = S(x_t, eps, t) + Delta_t / sqrt(alpha_t) + sqrt(abar_s) Delta_0
        x_t = sqrt(alpha_t) x_s + sqrt(1 - alpha_t) n,  n ~ N(0, I)     (recurrence: re-noise and redo)
    return the last x_s

with schedules over the sampling steps ``rho_t = rho * w_t * n / sum(w)`` (``w_t`` = 1, ``alpha_t``
"increase" or ``1 - alpha_t`` "decrease"), the same for ``mu_t``, and ``gamma_t = gamma
sqrt(1 - abar_t)``. ``S`` is the sampler's own step (DDPM ancestral or DDIM) from the UNGUIDED
``eps``; the guidance enters only through the two shifts, as in the authors' code.

Special cases (the paper's Section 3, Table 1), as :class:`TFGConfig` settings (:data:`SPECIAL_CASES`):

=========  ======  =====  =======  =======  ======
method     rho     mu     gamma    N_recur  N_iter
=========  ======  =====  =======  =======  ======
DPS        > 0     0      0        1        0
LGD        > 0     0      > 0      1        0
FreeDoM    > 0     0      0        > 1      0
MPGD       0       > 0    0        1        1
UGD        > 0     > 0    0        > 1      >= 1
TFG        > 0     > 0    > 0      >= 1     >= 1
=========  ======  =====  =======  =======  ======

Notation (code -> paper): ``rho`` -> rho-bar, ``mu`` -> mu-bar, ``gamma`` -> gamma-bar,
``mc_samples`` -> the Monte-Carlo sample size, ``n_recur`` -> N_recur, ``n_iter`` -> N_iter,
``log_prob`` -> log f_c.

Departures: the authors' default step is DDIM with ``eta``; here ``S`` is whichever scheduler
:mod:`zoo.diffusion.ddpm` / :mod:`zoo.diffusion.ddim` provides (tests run both). The authors'
gradient rescaling is the identity outside their molecule tasks and is left out. The MC draws
and the recurrence's noise come from the guidance's own generator, so a setting with
``N_recur = 1`` consumes exactly the sampler's noise stream of every other arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Literal

import torch

__all__ = ["SPECIAL_CASES", "TFGConfig", "smoothed_log_prob", "step_weights", "tfg_sample", "tfg_step"]

LogProb = Callable[[torch.Tensor], torch.Tensor]  # x0 (N, ...) -> log f_c(x0), (N,)
Schedule = Literal["constant", "increase", "decrease"]


@dataclass(frozen=True)
class TFGConfig:
    """TFG's hyperparameters (see the module doc).

    Args:
        rho: mean-guidance strength rho-bar (gradient on x_t through the denoiser).
        mu: variance-guidance strength mu-bar (gradient on x0_hat, no backpropagation through the denoiser).
        gamma: implicit-dynamics scale gamma-bar (the predictor is smoothed at std ``gamma sqrt(1 - abar_t)``).
        mc_samples: Monte-Carlo draws of the smoothing (used when ``gamma > 0``).
        n_recur: N_recur, the times each step is redone after re-noising (1: no recurrence).
        n_iter: N_iter, the gradient steps on x0_hat per recurrence.
        rho_schedule, mu_schedule: how the strengths vary over the steps (mean 1 over the steps).
    """

    rho: float = 0.0
    mu: float = 0.0
    gamma: float = 0.0
    mc_samples: int = 4
    n_recur: int = 1
    n_iter: int = 0
    rho_schedule: Schedule = "increase"
    mu_schedule: Schedule = "increase"

    def __post_init__(self) -> None:
        if self.rho < 0 or self.mu < 0 or self.gamma < 0:
            raise ValueError(f"rho, mu and gamma must be >= 0, got {self.rho}, {self.mu}, {self.gamma}")
        if self.n_recur < 1 or self.n_iter < 0 or self.mc_samples < 1:
            raise ValueError("n_recur >= 1, n_iter >= 0 and mc_samples >= 1 are required")
        for s in (self.rho_schedule, self.mu_schedule):
            if s not in ("constant", "increase", "decrease"):
                raise ValueError(f"unknown schedule {s!r}; use constant, increase or decrease")

    def with_(self, **kw: float) -> "TFGConfig":
        return replace(self, **kw)


# The special cases with their fixed structural settings; the strengths are what a search tunes.
SPECIAL_CASES: dict[str, TFGConfig] = {
    "dps": TFGConfig(rho=1.0),
    "lgd": TFGConfig(rho=1.0, gamma=1.0),
    "freedom": TFGConfig(rho=1.0, n_recur=2),
    "mpgd": TFGConfig(mu=1.0, n_iter=1),
    "ugd": TFGConfig(rho=1.0, mu=1.0, n_recur=2, n_iter=1),
    "tfg": TFGConfig(rho=1.0, mu=1.0, gamma=1.0, n_recur=2, n_iter=1),
}


def step_weights(abar: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """w_t over the sampling steps, normalised to mean 1: 1, alpha_t ("increase") or 1 - alpha_t ("decrease").

    ``abar`` holds alpha-bar at the sampling timesteps in sampling order, ``abar_s`` = the next entry
    (1 after the last).
    """
    abar = abar.double()
    prev = torch.cat([abar[1:], abar.new_ones(1)])
    alpha = abar / prev
    w = {"constant": torch.ones_like(alpha), "increase": alpha, "decrease": 1 - alpha}[schedule]
    return w * len(w) / w.sum()


def smoothed_log_prob(log_prob: LogProb, x0: torch.Tensor, std: float, mc_samples: int,
                      generator: torch.Generator | None) -> torch.Tensor:
    """f~_c(x0) = log (1/M) sum_m exp f_c(x0 + std d_m), ``d_m ~ N(0, I)``; exactly f_c when ``std = 0``."""
    if std == 0.0:
        return log_prob(x0)
    gen_device = generator.device if generator is not None else x0.device
    d = torch.randn((mc_samples, *x0.shape), generator=generator, device=gen_device, dtype=x0.dtype).to(x0.device)
    lp = torch.stack([log_prob(x0 + std * d[m]) for m in range(mc_samples)])
    return torch.logsumexp(lp, 0) - math.log(mc_samples)


def tfg_step(scheduler, eps_fn: Callable[[torch.Tensor, int], torch.Tensor], log_prob: LogProb, x: torch.Tensor,
             t: int, cfg: TFGConfig, rho_t: float, mu_t: float, generator: torch.Generator | None,
             guide_generator: torch.Generator | None) -> torch.Tensor:
    """One TFG step x_t -> x_s (the module doc's loop), with the step's strengths ``rho_t``, ``mu_t``."""
    t = int(t)
    s = scheduler.previous_timestep(t)
    abar_t = scheduler.alphas_cumprod[t]
    abar_s = scheduler.alphas_cumprod[s] if s >= 0 else abar_t.new_ones(())
    alpha_t = float(abar_t / abar_s)
    std = cfg.gamma * float((1 - abar_t).sqrt())
    clip = scheduler.clip_sample

    def x0_of(x_: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        x0 = scheduler.predict_x0(eps, t, x_)
        return x0 if clip is None else x0.clamp(-clip, clip)

    x_prev = x
    for r in range(cfg.n_recur):
        if rho_t != 0.0:
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                eps = eps_fn(xg, t)
                x0 = x0_of(xg, eps)
                lp = smoothed_log_prob(log_prob, x0, std, cfg.mc_samples, guide_generator)
                delta_t = rho_t * torch.autograd.grad(lp.sum(), xg)[0]  # mean guidance on x_t
            eps, x0 = eps.detach(), x0.detach()
        else:
            eps = eps_fn(x, t).detach()
            x0 = x0_of(x, eps)
            delta_t = torch.zeros_like(x)
        new_x0 = x0.clone()
        if mu_t != 0.0:
            for _ in range(cfg.n_iter):  # variance guidance on x0_hat
                with torch.enable_grad():
                    xq = new_x0.detach().requires_grad_(True)
                    lp = smoothed_log_prob(log_prob, xq, std, cfg.mc_samples, guide_generator)
                    new_x0 = new_x0 + mu_t * torch.autograd.grad(lp.sum(), xq)[0]
        delta_0 = new_x0 - x0
        x_prev = scheduler.step(eps, t, x, generator=generator).prev_sample
        x_prev = x_prev + delta_t / math.sqrt(alpha_t) + float(abar_s.sqrt()) * delta_0
        if r + 1 < cfg.n_recur:  # recurrence: back to x_t and redo the step
            gen_device = guide_generator.device if guide_generator is not None else x.device
            n = torch.randn(x.shape, generator=guide_generator, device=gen_device, dtype=x.dtype).to(x.device)
            x = math.sqrt(alpha_t) * x_prev + math.sqrt(1 - alpha_t) * n
    return x_prev.detach()


def tfg_sample(scheduler, eps_fn: Callable[[torch.Tensor, int], torch.Tensor], log_prob: LogProb,
               x: torch.Tensor, cfg: TFGConfig, generator: torch.Generator | None = None,
               guide_generator: torch.Generator | None = None) -> torch.Tensor:
    """Run TFG over ``scheduler.timesteps`` from x_T.

    Args:
        scheduler: a DDPM or DDIM scheduler after ``set_timesteps``.
        eps_fn: the unconditional ``eps(x, t)`` (``t`` a Python int), differentiable in x.
        log_prob: ``x0 -> log f_c(x0)`` per sample, for the batch's targets (differentiable).
        x: x_T.
        cfg: the hyperparameters; ``TFGConfig()`` (all strengths 0) is unguided sampling.
        generator: the sampler's noise; guide_generator: the MC draws and the recurrence's noise.

    Returns:
        x_0.
    """
    ts = [int(t) for t in scheduler.timesteps]
    abar = scheduler.alphas_cumprod[torch.tensor(ts)]
    rho = cfg.rho * step_weights(abar, cfg.rho_schedule)
    mu = cfg.mu * step_weights(abar, cfg.mu_schedule)
    for i, t in enumerate(ts):
        x = tfg_step(scheduler, eps_fn, log_prob, x, t, cfg, float(rho[i]), float(mu[i]), generator, guide_generator)
    return x
