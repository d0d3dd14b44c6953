"""Independent condition guidance (ICG) and time-step guidance (TSG).

Seyedmorteza Sadat, Manuel Kansy, Otmar Hilliges, Romann M. Weber, "No Training, No Problem:
Rethinking Classifier-Free Guidance for Diffusion Models", ICLR 2025, https://arxiv.org/abs/2407.02687.

Both methods keep classifier-free guidance's update (Ho & Salimans eq. 6, in our weight ``w``; the
paper writes the same rule with a scale ``w_paper = 1 + w``) and only change where the second,
"unconditional" prediction comes from, so they cost exactly what CFG costs (two network calls per
step, batched into one) and run under any scheduler of :func:`zoo.diffusion.guidance.sample`:

* **ICG** (Section 4): a conditional model trained WITHOUT a null token has no unconditional
  branch. If ``c_hat`` is drawn independently of ``z_t`` then ``p(z_t | c_hat) = p(z_t)``, so the
  conditional network queried with a random condition stands in for the unconditional score::

      eps_tilde(z_t, c) = eps(z_t, t, c) + w (eps(z_t, t, c) - eps(z_t, t, c_hat)),   c_hat ~ p(c)

  For class labels ``c_hat`` is a uniformly random class (the paper's choice for class-conditional
  models; random Gaussian embeddings for text).
* **TSG** (Section 5): for any model (unconditional ones included) the time-step embedding is
  perturbed with Gaussian noise, ``emb_tilde(t) = emb(t) + s n`` with ``n ~ N(0, I)``, and the
  prediction under the perturbed embedding plays the unconditional role::

      eps_tilde(z_t, t) = eps(z_t, emb(t)) + w (eps(z_t, emb(t)) - eps(z_t, emb(t) + s n))

  The paper motivates it by the perturbed prediction being a worse, blurrier denoiser (a Taylor
  expansion relates it to a Langevin-like step); the noise scale ``s`` is a hyperparameter.

Notation (code -> paper): ``w`` -> w - 1 (our CFG weight), ``random_labels`` -> c_hat,
``noise_scale`` -> s, ``time_embedding`` -> the sinusoidal embedding of t (before the time MLP),
``n`` -> n.

Departures and choices:

* ``c_hat`` is drawn afresh at every sampling step (``resample="step"``, the default): a label drawn
  once per trajectory makes the later ``z_t`` depend on it (the trajectory was pushed away from
  ``c_hat``), which breaks the independence the derivation needs; ``resample="once"`` keeps one label
  per sample for the ablation. The paper does not say which it used for class labels.
* TSG's noise ``n`` is drawn afresh at every step, one vector per sample, from the guider's own
  generator (so the sampler's noise stream stays that of every other arm); it perturbs the
  sinusoidal embedding that :class:`~zoo.diffusion.classifier_free_guidance.ConditionalDenoiser`
  feeds its time MLP.
* The paper applies guidance with its own step counts and samplers on large image models; here the
  networks are small MLPs and the conditions 3 or 10 class labels.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F

from zoo.diffusion.classifier_free_guidance import ConditionalDenoiser, _timestep_embedding

__all__ = [
    "denoise_with_time_embedding",
    "independent_condition_model_fn",
    "time_step_guidance_model_fn",
]

ModelFn = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


def independent_condition_model_fn(
    model: ConditionalDenoiser,
    labels: torch.Tensor,
    generator: torch.Generator,
    resample: Literal["step", "once"] = "step",
) -> ModelFn:
    """ICG's ``(x, t) -> (eps(x, t, c), eps(x, t, c_hat))`` with ``c_hat`` uniform over the real classes.

    Pair it with :class:`~zoo.diffusion.guidance.CFGGuider` (``w`` = CFG's weight; ``w = 0`` is the
    plain conditional model). The null token is never used, so the model may have been trained
    without one (label dropout 0).

    Args:
        model: the conditional denoiser ``eps(x, t, c)``.
        labels: the conditioning classes ``c`` of the batch, ``(N,)``.
        generator: random source of ``c_hat`` (keep it apart from the sampler's generator so the
            sampling noise is that of the CFG arm).
        resample: ``"step"`` draws a new ``c_hat`` at every call (every sampling step), ``"once"``
            one per sample for the whole trajectory.

    Example:
        >>> import torch
        >>> m = ConditionalDenoiser(2, 3, 10, hidden=8, depth=1)
        >>> fn = independent_condition_model_fn(m, torch.tensor([0, 1]), torch.Generator().manual_seed(0))
        >>> all(e.shape == (2, 2) for e in fn(torch.zeros(2, 2), 5))
        True
    """
    if resample not in ("step", "once"):
        raise ValueError(f"resample must be 'step' or 'once', got {resample!r}")
    k = model.num_classes

    def draw() -> torch.Tensor:
        c_hat = torch.randint(0, k, labels.shape, generator=generator, device=generator.device)
        return c_hat.to(labels.device)

    fixed = draw() if resample == "once" else None

    def fn(x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        c_hat = fixed if fixed is not None else draw()
        n = x.shape[0]
        tt = torch.full((2 * n,), int(t), device=x.device, dtype=torch.long)
        eps = model(torch.cat([x, x]), tt, torch.cat([labels, c_hat]))
        return eps[:n], eps[n:]

    return fn


def denoise_with_time_embedding(model: ConditionalDenoiser, x: torch.Tensor, emb: torch.Tensor,
                                c: torch.Tensor) -> torch.Tensor:
    """``eps(x, emb, c)``: :class:`ConditionalDenoiser`'s forward with the time embedding given.

    ``emb`` is the ``(N, hidden)`` sinusoidal embedding (before the time MLP); with
    ``_timestep_embedding(t, ...)`` it equals ``model(x, t, c)`` exactly (a test checks).
    """
    # Copied from zoo.diffusion.classifier_free_guidance.ConditionalDenoiser.forward (after the embedding).
    shape = x.shape
    n = shape[0]
    temb = model.time_mlp(emb.to(model.inp.weight.dtype))
    e = temb + model.class_emb(c)
    h = model.inp(x.reshape(n, -1))
    for blk in model.blocks:
        h = h + blk["fc2"](F.silu(blk["fc1"](F.silu(h)) + e))
    return model.out(F.silu(h)).reshape(shape)


def time_step_guidance_model_fn(
    model: ConditionalDenoiser,
    labels: torch.Tensor,
    noise_scale: float,
    generator: torch.Generator,
) -> ModelFn:
    """TSG's ``(x, t) -> (eps(x, emb(t), c), eps(x, emb(t) + s n, c))``, ``n ~ N(0, I)`` per step.

    Pair it with :class:`~zoo.diffusion.guidance.CFGGuider`. ``labels`` may be the null token
    (``model.null_class``) for unconditional sampling or real classes (TSG on a conditional model
    that has no unconditional branch); either way no condition is perturbed, only the time step.

    Args:
        model: the denoiser.
        labels: the classes fed to both predictions, ``(N,)``.
        noise_scale: s, the standard deviation of the perturbation of the time embedding (0: the
            two predictions coincide and guidance does nothing).
        generator: random source of ``n``.
    """
    if noise_scale < 0:
        raise ValueError(f"noise_scale must be >= 0, got {noise_scale}")

    def fn(x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        tt = torch.full((n,), int(t), device=x.device, dtype=torch.long)
        emb = _timestep_embedding(tt, model.hidden, model.num_timesteps).to(x.device)
        noise = torch.randn(emb.shape, generator=generator, device=generator.device).to(x.device)
        both = denoise_with_time_embedding(model, torch.cat([x, x]), torch.cat([emb, emb + noise_scale * noise]),
                                           torch.cat([labels, labels]))
        return both[:n], both[n:]

    return fn
