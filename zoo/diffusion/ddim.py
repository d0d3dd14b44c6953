"""Denoising diffusion implicit models: the DDIM reverse step, deterministic at eta = 0.

Jiaming Song, Chenlin Meng, Stefano Ermon, "Denoising Diffusion Implicit Models", ICLR 2021,
https://arxiv.org/abs/2010.02502. The noise schedule, the forward noising, the timestep respacing
and the x_0 prediction are DDPM's: :class:`DDIMScheduler` subclasses
:class:`zoo.diffusion.ddpm.DDPMScheduler` and replaces only ``step`` (and its variance), so the diff
*is* the paper.

Notation (code name -> paper symbol). The DDIM paper writes alpha_t for what DDPM writes
alpha-bar_t; we keep DDPM's alpha-bar throughout:

* ``alphas_cumprod[t]`` -> alpha-bar_t (DDIM's alpha_t); ``s`` -> the next sampled timestep
  (DDIM's t-1 on the sub-sequence tau), with alpha-bar_{-1} = 1;
* ``eta`` -> eta (DDIM eq. 16), ``sigma`` -> sigma_t(eta).

Equations (DDIM eq. 12, with sigma from eq. 16)::

    x0_hat     = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t)
    sigma^2    = eta^2 (1 - abar_s) / (1 - abar_t) (1 - abar_t / abar_s)      # eta^2 x DDPM's beta-tilde
    x_s        = sqrt(abar_s) x0_hat                                          # "predicted x_0"
               + sqrt(1 - abar_s - sigma^2) eps_theta                         # "direction pointing to x_t"
               + sigma z,  z ~ N(0, I)                                        # random noise

At ``eta = 1`` sigma^2 is DDPM's posterior variance beta-tilde and the step *is* the DDPM
ancestral step (same mean, same variance); at ``eta = 0`` the step is deterministic (the DDIM
sampler proper, an ODE discretisation).

Usage is the scheduler contract of :mod:`zoo.diffusion.ddpm`::

    sched = DDIMScheduler(num_train_timesteps=1000, eta=0.0)
    sched.set_timesteps(50)
    for t in sched.timesteps:
        x = sched.step(model(x, t), int(t), x).prev_sample

Note:
    diffusers' ``DDIMScheduler`` computes the next timestep as ``t - T // num_inference_steps``,
    which departs from the entries of its own ``timesteps`` under ``timestep_spacing="linspace"``;
    here the next timestep is always the next entry of :attr:`timesteps` (as in DDPM's respacing).

References:
    Song, Meng, Ermon (2021), Denoising Diffusion Implicit Models, https://arxiv.org/abs/2010.02502.
"""

from __future__ import annotations

from typing import Literal

import torch

from zoo.diffusion.ddpm import DDPMScheduler, DDPMSchedulerOutput

__all__ = ["DDIMScheduler", "DDIMSchedulerOutput"]

# The output has DDPM's fields (prev_sample, pred_original_sample): one contract for every sampler.
DDIMSchedulerOutput = DDPMSchedulerOutput


class DDIMScheduler(DDPMScheduler):
    """DDIM's generalised reverse step on DDPM's noise schedule.

    Args:
        num_train_timesteps: T, the number of diffusion steps the model is trained on.
        beta_schedule: ``"cosine"`` (Improved DDPM) or ``"linear"`` (DDPM), as in
            :class:`~zoo.diffusion.ddpm.DDPMScheduler`.
        beta_start: first beta of the linear schedule.
        beta_end: last beta of the linear schedule.
        eta: eta >= 0 of DDIM eq. 16; 0 is deterministic DDIM, 1 is DDPM's ancestral step.
        clip_sample: if given, clamp x0_hat to ``[-clip_sample, clip_sample]``; the direction term
            then uses the epsilon re-derived from the clamped x0_hat (as diffusers does).

    Example:
        >>> import torch
        >>> sched = DDIMScheduler(100, eta=0.0)
        >>> sched.set_timesteps(10)
        >>> x = torch.randn(4, 2)
        >>> for t in sched.timesteps:
        ...     x = sched.step(torch.zeros_like(x), int(t), x).prev_sample
        >>> x.shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_schedule: Literal["cosine", "linear"] = "cosine",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        eta: float = 0.0,
        clip_sample: float | None = None,
    ) -> None:
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            beta_schedule=beta_schedule,
            beta_start=beta_start,
            beta_end=beta_end,
            variance_interp=0.0,
            clip_sample=clip_sample,
        )
        self.eta = float(eta)

    def variance(self, t: int) -> torch.Tensor:
        """sigma_t(eta)^2 = eta^2 beta-tilde of the step from ``t`` (DDIM eq. 16), float64."""
        s = self.previous_timestep(t)
        abar_t = self.alphas_cumprod[t]
        abar_s = self.alphas_cumprod[s] if s >= 0 else abar_t.new_ones(())
        return self.eta**2 * (1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s)

    def step(
        self,
        eps_pred: torch.Tensor,
        t: int,
        xt: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> DDPMSchedulerOutput:
        """One DDIM step x_t -> x_s from an epsilon prediction (DDIM eq. 12).

        Args:
            eps_pred: epsilon_theta(x_t, t) (for guidance: the guided epsilon), shape of ``xt``.
            t: the current timestep, an entry of :attr:`timesteps`.
            xt: the current sample x_t.
            generator: random source for the fresh noise (only drawn when ``eta > 0``).
            noise: the fresh noise itself, instead of drawing it (for tests).

        Returns:
            :class:`DDIMSchedulerOutput` with x_s and x0_hat.
        """
        t = int(t)
        s = self.previous_timestep(t)
        abar_t = self.alphas_cumprod[t]
        abar_s = self.alphas_cumprod[s] if s >= 0 else abar_t.new_ones(())
        # eq. 12, "predicted x_0"
        x0_hat = self.predict_x0(eps_pred, t, xt)
        eps = eps_pred
        if self.clip_sample is not None:
            x0_hat = x0_hat.clamp(-self.clip_sample, self.clip_sample)
            eps = (xt - abar_t.sqrt().to(xt.dtype) * x0_hat) / (1 - abar_t).sqrt().to(xt.dtype)
        var = self.variance(t)  # eq. 16, sigma_t(eta)^2
        # eq. 12, "direction pointing to x_t"
        direction = (1 - abar_s - var).clamp(min=0).sqrt().to(xt.dtype) * eps
        prev = abar_s.sqrt().to(xt.dtype) * x0_hat + direction
        if self.eta > 0 and s >= 0:
            if noise is None:
                gen_device = generator.device if generator is not None else xt.device
                noise = torch.randn(xt.shape, generator=generator, device=gen_device, dtype=xt.dtype).to(xt.device)
            prev = prev + var.sqrt().to(xt.dtype) * noise  # eq. 12, "random noise"
        return DDIMSchedulerOutput(prev, x0_hat)

    def __repr__(self) -> str:
        return (
            f"DDIMScheduler(num_train_timesteps={self.num_train_timesteps}, beta_schedule={self.beta_schedule!r}, "
            f"eta={self.eta}, clip_sample={self.clip_sample}, num_inference_steps={self.num_inference_steps})"
        )
