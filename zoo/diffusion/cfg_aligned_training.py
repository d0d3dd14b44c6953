"""A CFG-aligned denoising loss (our reading of Patel, Salamanca & Barba 2023): fit the guided estimate itself.

Niket Patel, Luis Salamanca, Luis Barba, "Bridging the Gap: Addressing Discrepancies in Diffusion
Model Training for Classifier-Free Guidance", NeurIPS 2023 Workshop on Diffusion Models,
https://arxiv.org/abs/2311.00938.

The paper's point: classifier-free guidance samples with the combination
``eps_tilde = (1 + w) eps_theta(x_t, c) - w eps_theta(x_t)`` (Ho & Salimans eq. 6), but the model is
trained with the plain denoising loss on ``eps_theta(x_t, c)`` and ``eps_theta(x_t)`` separately
(label dropout), so nothing in training asks ``eps_tilde`` to be a good noise estimate; at large w
this yields off-distribution samples. The paper replaces the loss by one that "better aligns training
objectives with sampling behaviours".

**Source status.** Only the abstract and the start of the introduction were reachable (the arXiv
full text, its equations and its experiments' settings were not), so the objective below is OUR
reading of the abstract, not the paper's equation:

* label-dropped rows (probability ``p_uncond``) train the unconditional branch as usual,
  ``|| eps_theta(x_t, t, null) - eps ||^2``;
* the other rows train the guided combination at the guidance weight ``w`` used for sampling,
  ``|| (1 + w) eps_theta(x_t, t, c) - w sg[eps_theta(x_t, t, null)] - eps ||^2``, where ``sg`` is a
  stop-gradient (``detach_uncond=True``, our choice: the unconditional branch is fitted only by its
  own rows, so it stays the unconditional model that the guided term is measured against).

At ``w = 0`` this is exactly the classifier-free-guidance training loss
(:func:`zoo.diffusion.classifier_free_guidance.classifier_free_guidance_loss`, same draws for the
same generator state). At its optimum (``sg`` on) the unconditional branch is ``E[eps | x_t]`` and
the guided combination is ``E[eps | x_t, c]``: sampling with CFG at the training ``w`` then follows
the *conditional* model, so under this reading the loss trades guidance's sharpening for robustness to
w. That is a consequence of our reading that the paper's equations may not share; it is why no claim
of the paper is registered against this implementation.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.diffusion.classifier_free_guidance import drop_labels, guided_epsilon

__all__ = ["cfg_aligned_loss"]


def cfg_aligned_loss(model: nn.Module, scheduler, x0: torch.Tensor, c: torch.Tensor, *, w: float,
                     p_uncond: float = 0.1, detach_uncond: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """The CFG-aligned epsilon loss (our reading, module docstring), mean over the batch and dimensions.

    ``model(x_t, t, labels)`` predicts epsilon and has ``null_class``; ``scheduler`` has
    ``sample_timesteps`` and ``add_noise`` (:class:`zoo.diffusion.ddpm.DDPMScheduler`). The draws of
    dropped labels, t and eps follow :func:`~zoo.diffusion.classifier_free_guidance.classifier_free_guidance_loss`.
    """
    null = model.null_class
    c_in = drop_labels(c, p_uncond, null, generator)
    t = scheduler.sample_timesteps(x0.shape[0], device=x0.device, generator=generator)
    gen_device = generator.device if generator is not None else x0.device
    eps = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=x0.dtype).to(x0.device)
    xt = scheduler.add_noise(x0, eps, t)
    pred = model(xt, t, c_in)  # conditional rows: eps_theta(x_t, c); dropped rows: eps_theta(x_t, null)
    if float(w) != 0.0:
        kept = c_in != null
        eps_u = model(xt, t, torch.full_like(c_in, null))
        if detach_uncond:
            eps_u = eps_u.detach()
        pred = torch.where(kept.reshape(-1, *([1] * (x0.ndim - 1))), guided_epsilon(pred, eps_u, float(w)), pred)
    return ((pred - eps) ** 2).mean()
