"""Guiders and the sample loop: every guider under every sampler (DDPM, DDIM, with and without the
Langevin corrector); a w = 0 guider is exactly the conditional model's sampling; the CFG sign;
progress is 0 at the first step and 1 at the last for any step count and any timestep spacing, so a
schedule does not depend on the number of steps (diffusers #9641)."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.diffusion.classifier_free_guidance import guided_epsilon
from zoo.diffusion.ddim import DDIMScheduler
from zoo.diffusion.ddpm import DDPMScheduler
from zoo.diffusion.guidance import (
    CFGGuider,
    Guider,
    constant_schedule,
    cosine_schedule,
    linear_decreasing_schedule,
    linear_increasing_schedule,
    sample,
    sampling_progress,
)
from zoo.diffusion.langevin import LangevinCorrector

SCHEDULES = [constant_schedule, linear_increasing_schedule, linear_decreasing_schedule, cosine_schedule]
SAMPLERS = {
    "ddpm": lambda: DDPMScheduler(100),
    "ddim_eta0": lambda: DDIMScheduler(100, eta=0.0),
    "ddim_eta1": lambda: DDIMScheduler(100, eta=1.0),
}


def _cond(x: torch.Tensor, t: int) -> torch.Tensor:
    return 0.5 * x + 0.1  # a toy conditional epsilon


def _uncond(x: torch.Tensor, t: int) -> torch.Tensor:
    return 0.4 * x - 0.2


def _pair(x: torch.Tensor, t: int):
    return _cond(x, t), _uncond(x, t)


class _Recorder:
    """A guider that records the progress it is called with (and returns eps_cond)."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    def guide(self, eps_cond, eps_uncond, progress):
        self.seen.append(progress)
        return eps_cond


@pytest.mark.parametrize("corrector", [None, LangevinCorrector(snr=0.1)], ids=["plain", "langevin"])
@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.__name__)
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_guider_under_every_sampler(sampler: str, schedule, corrector) -> None:
    sched = SAMPLERS[sampler]()
    sched.set_timesteps(10)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    guider = CFGGuider(3.0, schedule)
    assert isinstance(guider, Guider)
    gen = torch.Generator().manual_seed
    out = sample(sched, _pair, x, guider=guider, corrector=corrector, progress=False, generator=gen(1))
    assert out.shape == x.shape and torch.isfinite(out).all()
    # w = 0 is the conditional model's sampling, bit for bit (same noise draws).
    w0 = CFGGuider(0.0, schedule)
    zero = sample(sched, _pair, x, guider=w0, corrector=corrector, progress=False, generator=gen(1))
    cond = sample(sched, _cond, x, corrector=corrector, progress=False, generator=gen(1))
    assert torch.equal(zero, cond)
    # and w > 0 moves away from it.
    assert not torch.allclose(out, cond)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.__name__)
def test_cfg_guider_is_ho_salimans_eq6(schedule) -> None:
    gen = torch.Generator().manual_seed(0)
    c, u = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    for p in (0.0, 0.3, 1.0):
        w = 2.5 * schedule(p)
        g = CFGGuider(2.5, schedule).guide(c, u, p)
        # the two forms differ only in float rounding order (values near 0 need an absolute tolerance)
        assert torch.allclose(g, guided_epsilon(c, u, w), atol=1e-6)
        assert torch.allclose(g, c + w * (c - u), atol=1e-6)  # pushes away from the unconditional prediction


def test_schedules_endpoints_and_unit_mean() -> None:
    ps = torch.linspace(0, 1, 10001).tolist()
    for s in SCHEDULES:
        mean = sum(s(p) for p in ps) / len(ps)
        assert abs(mean - 1.0) < 1e-3, s.__name__
    assert linear_increasing_schedule(0) == 0 and linear_increasing_schedule(1) == 2
    assert linear_decreasing_schedule(0) == 2 and linear_decreasing_schedule(1) == 0
    assert cosine_schedule(0) == 0 and math.isclose(cosine_schedule(1), 2)
    with pytest.raises(ValueError):
        CFGGuider(1.0).scale(1.5)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("n", [2, 3, 10, 50, 100])
def test_progress_endpoints_for_any_step_count(sampler: str, n: int) -> None:
    sched = SAMPLERS[sampler]()
    sched.set_timesteps(n)
    rec = _Recorder()
    sample(sched, _pair, torch.zeros(2, 2), guider=rec, progress=False)
    assert rec.seen == [i / (n - 1) for i in range(n)]
    assert rec.seen[0] == 0.0 and rec.seen[-1] == 1.0


def test_progress_ignores_the_timestep_spacing() -> None:
    # Non-uniform timesteps (as Karras or "leading" spacings give): progress is still the position.
    sched = DDIMScheduler(1000)
    sched.timesteps = torch.tensor([900, 700, 300, 50, 10])
    rec = _Recorder()
    sample(sched, _pair, torch.zeros(2, 2), guider=rec, progress=False)
    assert rec.seen == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_schedule_is_the_same_for_10_and_50_steps() -> None:
    # diffusers #9641: a schedule indexed by the raw timestep changed with num_inference_steps.
    curves = {}
    for n in (10, 46, 50):
        sched = DDPMScheduler(1000)
        sched.set_timesteps(n)
        rec = _Recorder()
        sample(sched, _pair, torch.zeros(1, 1), guider=rec, progress=False)
        curves[n] = [CFGGuider(4.0, linear_increasing_schedule).scale(p) for p in rec.seen]
    for n, curve in curves.items():
        assert curve[0] == 0.0 and curve[-1] == 8.0, n
    # 46 steps visit every progress point of 10 steps (45 = 5 x 9): the weights there are identical.
    assert all(math.isclose(curves[10][i], curves[46][5 * i]) for i in range(10))


def test_sampling_progress() -> None:
    assert sampling_progress(0, 1) == 0.0
    assert sampling_progress(0, 7) == 0.0 and sampling_progress(6, 7) == 1.0
    with pytest.raises(ValueError):
        sampling_progress(7, 7)


def test_progress_bar_option_runs() -> None:
    sched = DDIMScheduler(50)
    sched.set_timesteps(5)
    out = sample(sched, _cond, torch.zeros(3, 2), progress=True)
    assert out.shape == (3, 2)
