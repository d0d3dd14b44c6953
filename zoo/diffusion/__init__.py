"""Diffusion models and their guidance.

* :mod:`zoo.diffusion.ddpm` - the DDPM noise schedule, forward noising and ancestral step
  (:class:`DDPMScheduler`); the caller writes the sampling loop.
* :mod:`zoo.diffusion.classifier_free_guidance` - Ho & Salimans (2022): label-dropout training of one
  conditional/unconditional denoiser and the guided noise prediction
  ``(1 + w) eps(z, c) - w eps(z)``.
* :mod:`zoo.diffusion.ddim` - Song, Meng & Ermon (2021): the DDIM step on DDPM's schedule
  (:class:`DDIMScheduler`, ``eta``; 0 deterministic, 1 DDPM's ancestral step).
* :mod:`zoo.diffusion.langevin` - Song et al. (2021): a Langevin corrector with the SNR step-size
  rule (:class:`LangevinCorrector`), usable after any scheduler step.
* :mod:`zoo.diffusion.guidance` - guiders ``guide(eps_cond, eps_uncond, progress)`` whose scale is a
  schedule of normalised sampling progress (:class:`CFGGuider`), and the generic :func:`sample` loop.
* :mod:`zoo.diffusion.analytic` - analytic references: exact scores, VP-noised marginals and optimal
  epsilon of (labelled) Gaussian mixtures, tilted targets ``p(x|c)^w p(x)^(1-w)`` with a near-exact
  1-D/2-D sampler, CFG's guided epsilon from the exact marginals, and sample distances (1-D W1,
  energy distance, sliced W1).
"""

from zoo.diffusion.analytic import (
    GaussianMixture,
    TiltedTarget,
    energy_distance,
    guided_eps,
    sliced_wasserstein,
    wasserstein_1d,
)
from zoo.diffusion.classifier_free_guidance import (
    ConditionalDenoiser,
    classifier_free_guidance_loss,
    drop_labels,
    guided_epsilon,
    guided_noise_prediction,
)
from zoo.diffusion.ddim import DDIMScheduler, DDIMSchedulerOutput
from zoo.diffusion.ddpm import DDPMScheduler, DDPMSchedulerOutput, cosine_alphas_cumprod
from zoo.diffusion.guidance import (
    CFGGuider,
    Guider,
    ScaleSchedule,
    constant_schedule,
    cosine_schedule,
    linear_decreasing_schedule,
    linear_increasing_schedule,
    sample,
    sampling_progress,
)
from zoo.diffusion.langevin import LangevinCorrector, score_from_epsilon

__all__ = [
    "CFGGuider",
    "ConditionalDenoiser",
    "DDIMScheduler",
    "DDIMSchedulerOutput",
    "DDPMScheduler",
    "DDPMSchedulerOutput",
    "GaussianMixture",
    "Guider",
    "LangevinCorrector",
    "ScaleSchedule",
    "TiltedTarget",
    "classifier_free_guidance_loss",
    "constant_schedule",
    "cosine_alphas_cumprod",
    "cosine_schedule",
    "drop_labels",
    "energy_distance",
    "guided_eps",
    "guided_epsilon",
    "guided_noise_prediction",
    "linear_decreasing_schedule",
    "linear_increasing_schedule",
    "sample",
    "sampling_progress",
    "score_from_epsilon",
    "sliced_wasserstein",
    "wasserstein_1d",
]
