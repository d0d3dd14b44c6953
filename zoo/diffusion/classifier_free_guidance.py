"""Classifier-free diffusion guidance.

Jonathan Ho, Tim Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 Workshop on Deep
Generative Models and Downstream Applications, https://arxiv.org/abs/2207.12598.

One network epsilon_theta(z, c) is both the conditional model (c a class) and the unconditional
one (c = the null token, written epsilon_theta(z) = epsilon_theta(z, null)). Notation (code name ->
paper symbol): ``x``/``xt`` -> z_lambda (the noisy sample; we use DDPM's discrete t for lambda),
``c`` -> c, ``null_class`` -> the null token, ``p_uncond`` -> p_uncond, ``w`` -> w.

* Training (Algorithm 1): replace c by the null token with probability ``p_uncond``, then take a
  denoising step on ``|| epsilon_theta(z_t, c) - epsilon ||^2`` with
  ``z_t = sqrt(alpha-bar_t) x + sqrt(1 - alpha-bar_t) epsilon``.
* Sampling (eq. 6, Algorithm 2): replace epsilon_theta(z_t, c) by
  ``epsilon-tilde = (1 + w) epsilon_theta(z_t, c) - w epsilon_theta(z_t)``.
  ``w = 0`` is the plain conditional model; ``w > 0`` moves samples towards where the implicit
  classifier ``p(c|z) ~ p(z|c)/p(z)`` is confident, trading diversity for class consistency.

.. warning::
   diffusers and most text-to-image code write the same rule with a "guidance scale"
   ``s = 1 + w``: ``eps_u + s (eps_c - eps_u)``. Here ``w`` is the paper's weight, so ``w = 0`` is
   no guidance, not ``s = 0``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from zoo.diffusion.ddpm import DDPMScheduler

__all__ = [
    "ConditionalDenoiser",
    "classifier_free_guidance_loss",
    "drop_labels",
    "guided_epsilon",
    "guided_noise_prediction",
]


def _timestep_embedding(t: torch.Tensor, dim: int, num_timesteps: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (the Transformer/DDPM position encoding), ``(N, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    # Rescale t to [0, 1000) so the frequencies suit any T.
    args = (t.float() * (1000.0 / num_timesteps))[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class ConditionalDenoiser(nn.Module):
    """An MLP epsilon_theta(x_t, t, c) with time and class embeddings and a learned null-class token.

    Class index ``num_classes`` is the null token (the "no class" input of the unconditional model),
    so the class embedding table has ``num_classes + 1`` rows. The summed time and class embedding is
    added inside every residual block, so conditioning reaches every depth.

    Args:
        data_dim: size of a (flattened) sample.
        num_classes: number of real classes.
        num_timesteps: T of the schedule (to scale the time embedding).
        hidden: width of the residual MLP.
        depth: number of residual blocks.
    """

    def __init__(self, data_dim: int, num_classes: int, num_timesteps: int, hidden: int = 256, depth: int = 3) -> None:
        super().__init__()
        if hidden % 2:
            raise ValueError(f"hidden must be even (sin/cos time embedding halves), got {hidden}")
        self.data_dim, self.num_classes, self.num_timesteps = data_dim, num_classes, num_timesteps
        self.inp = nn.Linear(data_dim, hidden)
        self.time_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.class_emb = nn.Embedding(num_classes + 1, hidden)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"fc1": nn.Linear(hidden, hidden), "fc2": nn.Linear(hidden, hidden)}) for _ in range(depth)
        )
        self.out = nn.Linear(hidden, data_dim)
        self.hidden = hidden

    @property
    def null_class(self) -> int:
        """The index of the null token: ``c = null_class`` asks for epsilon_theta(z)."""
        return self.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Predict the noise in ``x`` (shape ``(N, ...)``) at integer timesteps ``t`` for classes ``c``."""
        shape = x.shape
        n = shape[0]
        t = t.expand(n) if t.ndim == 0 else t
        # Embed each distinct timestep once: a sampling step shares one t across the whole batch.
        t_unique, inverse = torch.unique(t, return_inverse=True)
        # The sinusoids are computed in float32 and cast to the model's dtype (a float64 model works).
        emb = _timestep_embedding(t_unique, self.hidden, self.num_timesteps).to(self.inp.weight.dtype)
        temb = self.time_mlp(emb)[inverse]
        e = temb + self.class_emb(c)
        h = self.inp(x.reshape(n, -1))
        for blk in self.blocks:
            h = h + blk["fc2"](F.silu(blk["fc1"](F.silu(h)) + e))
        return self.out(F.silu(h)).reshape(shape)


def drop_labels(
    c: torch.Tensor, p_uncond: float, null_class: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Algorithm 1, line 3: replace each label by the null token with probability ``p_uncond``."""
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond}")
    gen_device = generator.device if generator is not None else c.device
    drop = torch.rand(c.shape, generator=generator, device=gen_device).to(c.device) < p_uncond
    return torch.where(drop, torch.full_like(c, null_class), c)


def classifier_free_guidance_loss(
    model: nn.Module,
    scheduler: DDPMScheduler,
    x0: torch.Tensor,
    c: torch.Tensor,
    p_uncond: float = 0.1,
    null_class: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The joint conditional/unconditional denoising loss of Algorithm 1 (mean over the batch).

    ``E_{t, eps, c'} || epsilon_theta(sqrt(alpha-bar_t) x0 + sqrt(1 - alpha-bar_t) eps, t, c') - eps ||^2``
    where ``c' = null`` with probability ``p_uncond`` and ``c' = c`` otherwise.

    Args:
        model: epsilon_theta, called as ``model(x_t, t, c)``.
        scheduler: the noise schedule (its ``add_noise`` gives x_t).
        x0: clean samples ``(N, ...)``.
        c: their class labels ``(N,)``.
        p_uncond: probability of training the unconditional model on a sample (the paper uses 0.1
            or 0.2; 0.5 was worse).
        null_class: the null token; defaults to ``model.null_class``.
        generator: random source for t, eps and the label dropout (default: torch's global one).

    Returns:
        The scalar loss.

    Example:
        >>> from zoo.training import train  # doctest: +SKIP
        >>> loss = lambda m, x, y: classifier_free_guidance_loss(m, sched, x, y, p_uncond=0.1)  # doctest: +SKIP
        >>> train(model, data, opt, epochs=10, batch_size=128, generator=g, loss=loss, eval_every=0)  # doctest: +SKIP
    """
    null = model.null_class if null_class is None else null_class
    c_in = drop_labels(c, p_uncond, null, generator)
    t = scheduler.sample_timesteps(x0.shape[0], device=x0.device, generator=generator)
    gen_device = generator.device if generator is not None else x0.device
    eps = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=x0.dtype).to(x0.device)
    xt = scheduler.add_noise(x0, eps, t)
    return F.mse_loss(model(xt, t, c_in), eps)


def guided_epsilon(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float | torch.Tensor) -> torch.Tensor:
    """Eq. 6 in functional form: ``(1 + w) eps_cond - w eps_uncond``.

    ``w`` is a number or a tensor broadcasting against the predictions (e.g. ``(N, 1)``, one weight
    per sample, to sweep several guidance strengths in one batch).
    """
    return (1 + w) * eps_cond - w * eps_uncond


@torch.no_grad()
def guided_noise_prediction(
    model: nn.Module,
    xt: torch.Tensor,
    t: int | torch.Tensor,
    c: torch.Tensor,
    w: float | torch.Tensor,
    null_class: int | None = None,
) -> torch.Tensor:
    """epsilon-tilde_theta(z_t, c) = (1 + w) epsilon_theta(z_t, c) - w epsilon_theta(z_t)  (eq. 6).

    The conditional and unconditional predictions come from one forward pass over the batch stacked
    twice (``c`` then the null token), which is what makes guidance cost one model call per step.

    Args:
        model: epsilon_theta, called as ``model(x_t, t, c)``.
        xt: noisy samples ``(N, ...)``.
        t: the current timestep (an int, or a ``(N,)`` tensor).
        c: the conditioning classes ``(N,)``.
        w: the guidance weight, a number or a tensor of shape ``(N,)`` (one per sample).
        null_class: the null token; defaults to ``model.null_class``.

    Returns:
        The guided noise prediction, shape of ``xt``.
    """
    null = model.null_class if null_class is None else null_class
    n = xt.shape[0]
    t_vec = torch.as_tensor(t, device=xt.device).long()
    t_vec = t_vec.expand(n) if t_vec.ndim == 0 else t_vec
    both = model(torch.cat([xt, xt]), torch.cat([t_vec, t_vec]), torch.cat([c, torch.full_like(c, null)]))
    eps_c, eps_u = both[:n], both[n:]
    if isinstance(w, torch.Tensor) and w.ndim == 1:
        w = w.to(xt.dtype).reshape(n, *([1] * (xt.ndim - 1)))
    return guided_epsilon(eps_c, eps_u, w)
