"""Diffusion models and their guidance.

* :mod:`zoo.diffusion.ddpm` - the DDPM noise schedule, forward noising and ancestral step
  (:class:`DDPMScheduler`); the caller writes the sampling loop.
* :mod:`zoo.diffusion.classifier_free_guidance` - Ho & Salimans (2022): label-dropout training of one
  conditional/unconditional denoiser and the guided noise prediction
  ``(1 + w) eps(z, c) - w eps(z)``.
"""

from zoo.diffusion.classifier_free_guidance import (
    ConditionalDenoiser,
    classifier_free_guidance_loss,
    drop_labels,
    guided_epsilon,
    guided_noise_prediction,
)
from zoo.diffusion.ddpm import DDPMScheduler, DDPMSchedulerOutput, cosine_alphas_cumprod

__all__ = [
    "ConditionalDenoiser",
    "DDPMScheduler",
    "DDPMSchedulerOutput",
    "classifier_free_guidance_loss",
    "cosine_alphas_cumprod",
    "drop_labels",
    "guided_epsilon",
    "guided_noise_prediction",
]
