"""Sampler-agnostic guidance: guiders, guidance-scale schedules of normalised progress, one loop.

A guider combines a conditional and an unconditional epsilon prediction into the epsilon the
scheduler steps with. Its scale is a function of the *normalised sampling progress*
``p in [0, 1]`` (0 at the first sampling step, 1 at the last), never of the raw timestep, so a
schedule means the same thing for 10 or 1000 steps and for any scheduler's timestep spacing
(diffusers #9641: a dynamic CFG indexed by the raw timestep oscillated and changed with the step
count).

Equations:

* progress of the i-th of n sampling steps: ``p_i = i / (n - 1)`` (``p_0 = 0`` for n = 1);
* classifier-free guidance (Ho & Salimans 2022, eq. 6) with a scheduled weight::

      w(p)        = w * s(p)
      eps_tilde   = (1 + w(p)) eps_cond - w(p) eps_uncond  =  eps_cond + w(p) (eps_cond - eps_uncond)

* scale schedules ``s(p)``, each with mean 1 over ``[0, 1]`` so ``w`` is the average weight
  (the parametrisation of Wang et al. 2024, "Analysis of Classifier-Free Guidance Weight
  Schedulers", with their t/T = 1 - p): constant ``1``; linear increasing ``2 p``; linear
  decreasing ``2 (1 - p)``; cosine ``1 - cos(pi p)`` (low early, high late).

``sample(scheduler, model_fn, x, guider, corrector)`` runs any scheduler with this contract
(``timesteps``, ``step(eps, t, x).prev_sample``), optionally a Langevin corrector after each step.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol, runtime_checkable

import torch

__all__ = [
    "CFGGuider",
    "Guider",
    "ScaleSchedule",
    "constant_schedule",
    "cosine_schedule",
    "linear_decreasing_schedule",
    "linear_increasing_schedule",
    "sample",
    "sampling_progress",
]

ScaleSchedule = Callable[[float], float]


def constant_schedule(p: float) -> float:
    """s(p) = 1."""
    return 1.0


def linear_increasing_schedule(p: float) -> float:
    """s(p) = 2 p (0 at the first step, 2 at the last; mean 1)."""
    return 2.0 * p


def linear_decreasing_schedule(p: float) -> float:
    """s(p) = 2 (1 - p) (2 at the first step, 0 at the last; mean 1)."""
    return 2.0 * (1.0 - p)


def cosine_schedule(p: float) -> float:
    """s(p) = 1 - cos(pi p) (0 at the first step, 2 at the last; mean 1)."""
    return 1.0 - math.cos(math.pi * p)


def sampling_progress(index: int, num_steps: int) -> float:
    """p = index / (num_steps - 1): 0 at the first sampling step, 1 at the last (0 if one step)."""
    if not 0 <= index < num_steps:
        raise ValueError(f"index must lie in [0, {num_steps}), got {index}")
    return index / (num_steps - 1) if num_steps > 1 else 0.0


@runtime_checkable
class Guider(Protocol):
    """The guider contract: ``guide(eps_cond, eps_uncond, progress) -> eps``, progress in [0, 1]."""

    def guide(self, eps_cond: torch.Tensor, eps_uncond: torch.Tensor, progress: float) -> torch.Tensor: ...


class CFGGuider:
    """Classifier-free guidance with a scheduled weight: ``eps_c + w s(p) (eps_c - eps_u)``.

    Args:
        w: the guidance weight (Ho & Salimans' w; 0 is the conditional model, -1 the unconditional).
        schedule: s(p), a callable of the normalised progress (default :func:`constant_schedule`).

    Example:
        >>> import torch
        >>> g = CFGGuider(2.0)
        >>> g.guide(torch.ones(1), torch.zeros(1), 0.0)
        tensor([3.])
    """

    def __init__(self, w: float, schedule: ScaleSchedule = constant_schedule) -> None:
        self.w = float(w)
        self.schedule = schedule

    def scale(self, progress: float) -> float:
        """w(p) = w s(p)."""
        if not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress must lie in [0, 1], got {progress}")
        return self.w * self.schedule(progress)

    def guide(self, eps_cond: torch.Tensor, eps_uncond: torch.Tensor, progress: float) -> torch.Tensor:
        """eps_tilde = (1 + w(p)) eps_cond - w(p) eps_uncond (Ho & Salimans eq. 6)."""
        w = self.scale(progress)
        return (1 + w) * eps_cond - w * eps_uncond

    def __repr__(self) -> str:
        name = getattr(self.schedule, "__name__", repr(self.schedule))
        return f"CFGGuider(w={self.w}, schedule={name})"


def sample(
    scheduler,
    model_fn: Callable,
    x: torch.Tensor,
    guider: Guider | None = None,
    corrector=None,
    progress: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Run ``scheduler`` from x over its :attr:`timesteps`, guided and corrected if asked.

    Args:
        scheduler: any scheduler with the DDPM contract (``timesteps``, ``step``; e.g.
            :class:`~zoo.diffusion.ddpm.DDPMScheduler`, :class:`~zoo.diffusion.ddim.DDIMScheduler`),
            after ``set_timesteps``.
        model_fn: ``model_fn(x, t) -> eps`` without a guider; ``model_fn(x, t) -> (eps_cond, eps_uncond)``
            with one (``t`` is a Python int).
        x: the starting noise x_T.
        guider: combines the two predictions at normalised progress p (see :func:`sampling_progress`,
            computed from the position in ``scheduler.timesteps``, never from t itself).
        corrector: e.g. :class:`~zoo.diffusion.langevin.LangevinCorrector`; applied after every step
            that lands on a timestep (not after the last), with the same guider at that step's progress.
        progress: show a tqdm progress bar (the bar, not the guidance progress p).
        generator: random source for the scheduler's and the corrector's noise.

    Returns:
        The final sample x_0.
    """
    timesteps = [int(t) for t in scheduler.timesteps]
    n = len(timesteps)

    def eps_at(x_: torch.Tensor, t: int, p: float) -> torch.Tensor:
        out = model_fn(x_, t)
        if guider is None:
            return out
        eps_cond, eps_uncond = out
        return guider.guide(eps_cond, eps_uncond, p)

    from tqdm.auto import tqdm

    for i, t in enumerate(tqdm(timesteps, disable=not progress, desc="sampling", leave=False)):
        p = sampling_progress(i, n)
        x = scheduler.step(eps_at(x, t, p), t, x, generator=generator).prev_sample
        if corrector is not None and i + 1 < n:
            p_next = sampling_progress(i + 1, n)
            x = corrector.step(lambda x_, t_: eps_at(x_, t_, p_next), timesteps[i + 1], x, scheduler, generator)
    return x
