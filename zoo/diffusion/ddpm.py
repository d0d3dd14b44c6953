"""Denoising diffusion probabilistic models: noise schedule, forward noising and the ancestral step.

Jonathan Ho, Ajay Jain, Pieter Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020,
https://arxiv.org/abs/2006.11239 (the cosine schedule, respaced sampling and the variance
interpolation are from Alex Nichol, Prafulla Dhariwal, "Improved Denoising Diffusion Probabilistic
Models", ICML 2021, https://arxiv.org/abs/2102.09672). This is the base that classifier-free
guidance (:mod:`zoo.diffusion.classifier_free_guidance`) steers.

Notation (code name -> paper symbol), timesteps ``t = 0 .. T-1`` as in diffusers:

* ``betas[t]`` -> beta_t, ``alphas_cumprod[t]`` -> alpha-bar_t = prod_{s<=t} (1 - beta_s);
  alpha-bar_{-1} = 1 (no noise before the first step);
* ``x0`` -> x_0 (data), ``xt`` -> x_t, ``eps`` -> epsilon ~ N(0, I), ``eps_pred`` -> epsilon_theta.

Equations:

* forward marginal (DDPM eq. 4): ``x_t = sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) eps``;
* x_0 from an epsilon prediction (DDPM eq. 15 rearranged):
  ``x0_hat = (x_t - sqrt(1 - alpha-bar_t) eps_theta) / sqrt(alpha-bar_t)``;
* posterior (DDPM eqs. 6-7), for consecutive sampled timesteps t > s with effective
  ``beta = 1 - alpha-bar_t / alpha-bar_s``:
  ``mu = sqrt(alpha-bar_s) beta / (1 - alpha-bar_t) x0_hat + sqrt(1 - beta) (1 - alpha-bar_s) / (1 - alpha-bar_t) x_t``,
  ``beta-tilde = (1 - alpha-bar_s) / (1 - alpha-bar_t) beta``;
* reverse variance (Improved DDPM eq. 15 with a fixed ``v``; Ho & Salimans' Algorithm 2 uses the same
  log-space interpolation): ``sigma^2 = exp(v log beta + (1 - v) log beta-tilde)``.

Like diffusers' one-file schedulers, the scheduler is a small object with ``add_noise`` for training,
``set_timesteps``/``timesteps``/``step`` for sampling; the caller writes the sampling loop::

    sched = DDPMScheduler(num_train_timesteps=1000)
    sched.set_timesteps(100)
    x = torch.randn(n, d)
    for t in sched.timesteps:
        x = sched.step(model(x, t), int(t), x).prev_sample
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["DDPMScheduler", "DDPMSchedulerOutput", "cosine_alphas_cumprod"]


@dataclass
class DDPMSchedulerOutput:
    """What one reverse step returns.

    Attributes:
        prev_sample: x_{t_prev}, the next (less noisy) sample.
        pred_original_sample: x0_hat, the model's estimate of the clean sample at this step.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


def cosine_alphas_cumprod(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """alpha-bar_t of the cosine schedule (Improved DDPM eq. 17), float64, shape ``(T,)``.

    ``f(t) = cos^2(((t/T + s) / (1 + s)) pi/2)``, ``alpha-bar_t = f(t)/f(0)``, with each
    ``beta_t = 1 - alpha-bar_t / alpha-bar_{t-1}`` clipped at ``max_beta`` so the last step stays finite.
    """
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64)
    f = torch.cos((steps / num_timesteps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1 - betas, dim=0)


class DDPMScheduler:
    """DDPM noise schedule with forward noising and an ancestral (stochastic) reverse step.

    Args:
        num_train_timesteps: T, the number of diffusion steps the model is trained on.
        beta_schedule: ``"cosine"`` (Improved DDPM) or ``"linear"`` (DDPM: beta from ``beta_start``
            to ``beta_end``).
        beta_start: first beta of the linear schedule.
        beta_end: last beta of the linear schedule.
        variance_interp: v in ``sigma^2 = beta^v beta-tilde^(1-v)``; 0 is the posterior variance
            beta-tilde (DDPM's "fixed small"), 1 is beta ("fixed large").
        clip_sample: if given, clamp x0_hat to ``[-clip_sample, clip_sample]`` before forming the
            posterior mean (DDPM does this for images scaled to [-1, 1]); ``None`` leaves it free.
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_schedule: Literal["cosine", "linear"] = "cosine",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        variance_interp: float = 0.0,
        clip_sample: float | None = None,
    ) -> None:
        if num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
        if not 0.0 <= variance_interp <= 1.0:
            raise ValueError(f"variance_interp must lie in [0, 1], got {variance_interp}")
        if clip_sample is not None and clip_sample <= 0:
            raise ValueError(f"clip_sample must be positive or None, got {clip_sample}")
        self.num_train_timesteps = num_train_timesteps
        self.beta_schedule = beta_schedule
        self.variance_interp = variance_interp
        self.clip_sample = clip_sample
        if beta_schedule == "cosine":
            abar = cosine_alphas_cumprod(num_train_timesteps)
        elif beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
            abar = torch.cumprod(1 - betas, dim=0)
        else:
            raise ValueError(f"beta_schedule must be 'cosine' or 'linear', got {beta_schedule!r}")
        # The schedule is kept in float64 (cheap, T numbers) and cast per use, so alpha-bar near 0
        # or 1 keeps its precision; inputs decide the dtype and device of every result.
        self.alphas_cumprod: torch.Tensor = abar
        self.betas: torch.Tensor = 1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])
        self.timesteps: torch.Tensor = torch.arange(num_train_timesteps - 1, -1, -1)
        self.num_inference_steps = num_train_timesteps

    # ------------------------------------------------------------------ training side

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) eps (DDPM eq. 4), one t per row.

        Args:
            x0: clean samples, shape ``(N, ...)``.
            noise: eps, same shape as ``x0``.
            t: integer timesteps in ``[0, T)``, shape ``(N,)``.

        Returns:
            The noised samples x_t, shape and dtype of ``x0``.
        """
        abar = self._gather(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def sample_timesteps(
        self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n timesteps drawn uniformly from ``[0, T)`` (DDPM Algorithm 1, line 3)."""
        gen_device = generator.device if generator is not None else device
        return torch.randint(0, self.num_train_timesteps, (n,), generator=generator, device=gen_device).to(device)

    # ------------------------------------------------------------------ sampling side

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Use ``num_inference_steps`` evenly spaced timesteps for sampling (Improved DDPM's respacing).

        ``step`` then jumps between consecutive entries of :attr:`timesteps` with the effective
        ``beta = 1 - alpha-bar_t / alpha-bar_prev``, so a model trained with T steps samples in fewer.
        The first entry is ``T - 1`` and, from two steps on, the last is ``0``; one step is ``[T - 1]``.
        """
        if not 1 <= num_inference_steps <= self.num_train_timesteps:
            raise ValueError(
                f"num_inference_steps must lie in [1, {self.num_train_timesteps}], got {num_inference_steps}"
            )
        ts = torch.linspace(0, self.num_train_timesteps - 1, num_inference_steps, dtype=torch.float64).round().long()
        if num_inference_steps == 1:  # a single step starts from the noisiest timestep, not from t = 0
            ts = torch.tensor([self.num_train_timesteps - 1])
        self.timesteps = ts.flip(0)
        self.num_inference_steps = num_inference_steps

    def previous_timestep(self, t: int) -> int:
        """The timestep that follows ``t`` in the sampling loop (-1 after the last one)."""
        later = self.timesteps[self.timesteps < t]
        return int(later[0]) if len(later) else -1

    def predict_x0(self, eps_pred: torch.Tensor, t: int, xt: torch.Tensor) -> torch.Tensor:
        """x0_hat = (x_t - sqrt(1 - alpha-bar_t) eps_theta) / sqrt(alpha-bar_t)."""
        abar = self.alphas_cumprod[t].to(xt.dtype)
        return (xt - (1 - abar).sqrt() * eps_pred) / abar.sqrt()

    def variance(self, t: int) -> torch.Tensor:
        """sigma^2 of the reverse step from ``t`` (interpolated between beta-tilde and beta), float64."""
        s = self.previous_timestep(t)
        abar_t = self.alphas_cumprod[t]
        abar_s = self.alphas_cumprod[s] if s >= 0 else abar_t.new_ones(())
        beta = 1 - abar_t / abar_s
        beta_tilde = (1 - abar_s) / (1 - abar_t) * beta
        if s < 0:
            return beta_tilde  # = 0: the last step returns the posterior mean, no fresh noise
        v = self.variance_interp
        return torch.exp(v * beta.log() + (1 - v) * beta_tilde.log())

    def step(
        self,
        eps_pred: torch.Tensor,
        t: int,
        xt: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> DDPMSchedulerOutput:
        """One ancestral step x_t -> x_{t_prev} from an epsilon prediction (DDPM Algorithm 2).

        Args:
            eps_pred: epsilon_theta(x_t, t) (for guidance: the guided epsilon-tilde), shape of ``xt``.
            t: the current timestep, an entry of :attr:`timesteps`.
            xt: the current sample x_t.
            generator: random source for the fresh noise (drawn on the generator's device).
            noise: the fresh noise itself, instead of drawing it (for tests).

        Returns:
            :class:`DDPMSchedulerOutput` with x_{t_prev} and x0_hat.
        """
        t = int(t)
        s = self.previous_timestep(t)
        abar_t = self.alphas_cumprod[t]
        abar_s = self.alphas_cumprod[s] if s >= 0 else abar_t.new_ones(())
        beta = 1 - abar_t / abar_s  # effective beta between the two sampled timesteps
        x0_hat = self.predict_x0(eps_pred, t, xt)
        if self.clip_sample is not None:
            x0_hat = x0_hat.clamp(-self.clip_sample, self.clip_sample)
        # Posterior mean coefficients (DDPM eq. 7).
        c0 = (abar_s.sqrt() * beta / (1 - abar_t)).to(xt.dtype)
        ct = ((1 - beta).sqrt() * (1 - abar_s) / (1 - abar_t)).to(xt.dtype)
        mean = c0 * x0_hat + ct * xt
        if s < 0:
            return DDPMSchedulerOutput(mean, x0_hat)
        if noise is None:
            gen_device = generator.device if generator is not None else xt.device
            noise = torch.randn(xt.shape, generator=generator, device=gen_device, dtype=xt.dtype).to(xt.device)
        sigma = self.variance(t).sqrt().to(xt.dtype)
        return DDPMSchedulerOutput(mean + sigma * noise, x0_hat)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _gather(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``table[t]`` cast to ``like``'s dtype/device and shaped to broadcast over its trailing dims."""
        vals = table.to(like.device)[t.to(like.device)].to(like.dtype)
        return vals.reshape(-1, *([1] * (like.ndim - 1)))

    def __repr__(self) -> str:
        return (
            f"DDPMScheduler(num_train_timesteps={self.num_train_timesteps}, beta_schedule={self.beta_schedule!r}, "
            f"variance_interp={self.variance_interp}, clip_sample={self.clip_sample}, "
            f"num_inference_steps={self.num_inference_steps})"
        )
