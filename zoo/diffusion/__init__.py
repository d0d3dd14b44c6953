"""Diffusion models and their guidance.

* :mod:`zoo.diffusion.ddpm` - the DDPM noise schedule, forward noising and ancestral step
  (:class:`DDPMScheduler`); the caller writes the sampling loop.
* :mod:`zoo.diffusion.classifier_free_guidance` - Ho & Salimans (2022): label-dropout training of one
  conditional/unconditional denoiser and the guided noise prediction
  ``(1 + w) eps(z, c) - w eps(z)``.
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
from zoo.diffusion.ddpm import DDPMScheduler, DDPMSchedulerOutput, cosine_alphas_cumprod

__all__ = [
    "ConditionalDenoiser",
    "DDPMScheduler",
    "DDPMSchedulerOutput",
    "GaussianMixture",
    "TiltedTarget",
    "classifier_free_guidance_loss",
    "cosine_alphas_cumprod",
    "drop_labels",
    "energy_distance",
    "guided_eps",
    "guided_epsilon",
    "guided_noise_prediction",
    "sliced_wasserstein",
    "wasserstein_1d",
]
