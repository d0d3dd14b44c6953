"""Classifier-free guidance weight schedulers (Wang et al., 2024), as functions of normalised progress.

Reference: Xi Wang, Nicolas Dufour, Nefeli Andreou, Marie-Paule Cani, Victoria Fernandez Abrevaya,
David Picard, Vicky Kalogeiton, "Analysis of Classifier-Free Guidance Weight Schedulers", TMLR 2024,
https://arxiv.org/abs/2404.13040 (asked for in diffusers issue #7756).

The paper replaces the constant CFG weight by a schedule over the reverse process::

    eps_tilde_t = eps(x_t, c) + w(t) (eps(x_t, c) - eps(x_t))             (CFG with a scheduled weight)

with ``t`` running from ``T`` (noise) down to 0. Its heuristic schedulers, written in the paper in
terms of ``t / T``, are written here in terms of the normalised sampling progress ``p = 1 - t/T``
(0 at the first sampling step, 1 at the last; :func:`zoo.diffusion.guidance.sampling_progress`):

* increasing linear ``w(p) = w * 2 p``;               decreasing linear ``w(p) = w * 2 (1 - p)``;
* increasing cosine ``w(p) = w * (1 - cos(pi p))``;   decreasing cosine ``w(p) = w * (1 + cos(pi p))``;
* step functions (increasing: 0 then 2w after ``p = 1/2``; decreasing the mirror image);
* V-shape / Lambda-shape (piecewise linear, minimum / maximum at ``p = 1/2``);
* clamp-linear ``w(p) = max(c, w * 2 p)`` (the paper's "clamping" of the increasing heuristics to a
  floor ``c``, which it found helps the low-guidance early steps; ``clamp_linear_schedule``);
* the parametrised power-cosine family (from MDT, Gao et al. 2023, studied in Sec. 5 of the paper)
  ``w(p) = w * (1 - cos(pi p^s)) / 2 * k_s`` with exponent ``s`` (``s = 1``: the cosine heuristic);
  here ``k_s`` normalises the mean to 1.

Departures from the paper:

* Every schedule's shape ``s(p)`` is normalised to **mean 1 over p in [0, 1]** (the paper plots
  its heuristics against matched *maximum*/base weight and compares curves over a sweep of w);
  ``w`` is then the mean guidance weight, so "constant vs increasing at matched mean w" is one
  argument. The clamp-linear schedule is the exception: its floor ``c`` is an absolute weight
  (as in the paper) and its mean is ``w`` only for ``c = 0``; :func:`schedule_mean` reports it.
* The scale is a function of the normalised progress, NEVER of the raw timestep: a schedule gives
  the same weights at the same progress for any number of steps or timestep spacing (diffusers
  #9641 was a dynamic CFG indexed by the raw timestep that oscillated and changed with the step
  count). The composition is :class:`zoo.diffusion.guidance.CFGGuider` ``(w, schedule)``.
* Ho & Salimans' convention is used (``w = 0`` is the conditional model); the paper's scale
  ``omega = 1 + w``.
"""

from __future__ import annotations

import math
from functools import lru_cache

from zoo.diffusion.guidance import (
    CFGGuider,
    ScaleSchedule,
    constant_schedule,
    cosine_schedule,
    linear_decreasing_schedule,
    linear_increasing_schedule,
)

__all__ = [
    "SCHEDULES",
    "clamp_linear_schedule",
    "constant_schedule",
    "cosine_decreasing_schedule",
    "cosine_schedule",
    "lambda_schedule",
    "linear_decreasing_schedule",
    "linear_increasing_schedule",
    "make_schedule",
    "power_cosine_schedule",
    "scheduled_guider",
    "schedule_mean",
    "step_decreasing_schedule",
    "step_increasing_schedule",
    "v_schedule",
]


def cosine_decreasing_schedule(p: float) -> float:
    """s(p) = 1 + cos(pi p) (2 at the first step, 0 at the last; mean 1): the inverted cosine."""
    return 1.0 + math.cos(math.pi * p)


def step_increasing_schedule(p: float) -> float:
    """s(p) = 0 for p < 1/2, 2 from p = 1/2 on (mean 1): guidance only in the second half."""
    return 2.0 if p >= 0.5 else 0.0


def step_decreasing_schedule(p: float) -> float:
    """s(p) = 2 for p < 1/2, 0 from p = 1/2 on (mean 1): guidance only in the first half."""
    return 0.0 if p >= 0.5 else 2.0


def v_schedule(p: float) -> float:
    """s(p) = 4 |p - 1/2| (2 at both ends, 0 in the middle; mean 1)."""
    return 4.0 * abs(p - 0.5)


def lambda_schedule(p: float) -> float:
    """s(p) = 2 - 4 |p - 1/2| (0 at both ends, 2 in the middle; mean 1)."""
    return 2.0 - 4.0 * abs(p - 0.5)


@lru_cache(maxsize=64)
def _power_cosine_norm(s: float) -> float:
    # mean over p of (1 - cos(pi p^s)) / 2, by the midpoint rule (4096 cells: error << 1e-6)
    n = 4096
    return sum((1.0 - math.cos(math.pi * ((i + 0.5) / n) ** s)) / 2.0 for i in range(n)) / n


def power_cosine_schedule(s: float) -> ScaleSchedule:
    """The parametrised power-cosine family ``(1 - cos(pi p^s)) / 2``, normalised to mean 1.

    ``s = 1`` is the increasing cosine heuristic (``1 - cos(pi p)``); larger ``s`` keeps the weight
    low for longer and ramps it up later; ``s < 1`` ramps it up earlier.
    """
    if s <= 0:
        raise ValueError(f"power_cosine_schedule: exponent s must be > 0, got {s}")
    k = 1.0 / _power_cosine_norm(float(s))

    def schedule(p: float) -> float:
        return k * (1.0 - math.cos(math.pi * p ** s)) / 2.0

    schedule.__name__ = f"power_cosine_s{s:g}"
    return schedule


def clamp_linear_schedule(w: float, c: float) -> ScaleSchedule:
    """``s(p) = max(c / w, 2 p)``: the increasing linear weight ``w 2 p`` clamped below at weight ``c``.

    Use as ``CFGGuider(w, clamp_linear_schedule(w, c))``: the guidance weight is then
    ``max(c, 2 w p)``. Its mean is above ``w`` when ``c > 0`` (see :func:`schedule_mean`).
    """
    if w <= 0:
        raise ValueError(f"clamp_linear_schedule: w must be > 0, got {w}")
    floor = c / w

    def schedule(p: float) -> float:
        return max(floor, 2.0 * p)

    schedule.__name__ = f"clamp_linear_c{c:g}"
    return schedule


SCHEDULES: dict[str, ScaleSchedule] = {
    "constant": constant_schedule,
    "linear_increasing": linear_increasing_schedule,
    "linear_decreasing": linear_decreasing_schedule,
    "cosine_increasing": cosine_schedule,
    "cosine_decreasing": cosine_decreasing_schedule,
    "step_increasing": step_increasing_schedule,
    "step_decreasing": step_decreasing_schedule,
    "v_shape": v_schedule,
    "lambda_shape": lambda_schedule,
}


def make_schedule(name: str, **params: float) -> ScaleSchedule:
    """A schedule by name: one of :data:`SCHEDULES`, ``power_cosine`` (``s=``), ``clamp_linear`` (``w=, c=``)."""
    if name in SCHEDULES:
        if params:
            raise ValueError(f"schedule {name!r} takes no parameters, got {sorted(params)}")
        return SCHEDULES[name]
    if name == "power_cosine":
        return power_cosine_schedule(float(params["s"]))
    if name == "clamp_linear":
        return clamp_linear_schedule(float(params["w"]), float(params["c"]))
    raise ValueError(f"unknown schedule {name!r}; use one of {sorted(SCHEDULES) + ['power_cosine', 'clamp_linear']}")


def schedule_mean(schedule: ScaleSchedule, num_steps: int | None = None) -> float:
    """Mean of ``s(p)``: over ``[0, 1]`` (midpoint rule, 4096 cells) or over the ``num_steps`` sampling steps."""
    if num_steps is None:
        n = 4096
        return sum(schedule((i + 0.5) / n) for i in range(n)) / n
    ps = [i / (num_steps - 1) for i in range(num_steps)] if num_steps > 1 else [0.0]
    return sum(schedule(p) for p in ps) / len(ps)


def scheduled_guider(w: float, name: str, **params: float) -> CFGGuider:
    """``CFGGuider(w, make_schedule(name, ...))``; for ``clamp_linear`` pass ``c=`` (``w`` is filled in)."""
    if name == "clamp_linear":
        params = {"w": w, **params}
    return CFGGuider(w, make_schedule(name, **params))
