"""CFG weight schedulers (Wang et al. 2024): shapes, endpoints and means of every schedule; the scale is
a function of normalised progress, so a schedule gives the same weights at the same progress under 20
and 100 sampling steps (diffusers #9641); w = 0 is the conditional model; the scheduled weight reaches
the guided epsilon under DDPM and DDIM; clamp-linear and the power-cosine family."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.diffusion.cfg_weight_schedulers import (
    SCHEDULES,
    clamp_linear_schedule,
    make_schedule,
    power_cosine_schedule,
    schedule_mean,
    scheduled_guider,
)
from zoo.diffusion.ddim import DDIMScheduler
from zoo.diffusion.ddpm import DDPMScheduler
from zoo.diffusion.guidance import CFGGuider, sample, sampling_progress

INCREASING = ["linear_increasing", "cosine_increasing", "step_increasing"]
DECREASING = ["linear_decreasing", "cosine_decreasing", "step_decreasing"]
SAMPLERS = {"ddpm": lambda: DDPMScheduler(100), "ddim": lambda: DDIMScheduler(100, eta=0.0)}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_has_mean_one(name):
    assert schedule_mean(SCHEDULES[name]) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("s", [0.5, 1.0, 2.0, 4.0])
def test_power_cosine_has_mean_one_and_s1_is_the_cosine_heuristic(s):
    f = power_cosine_schedule(s)
    assert schedule_mean(f) == pytest.approx(1.0, abs=1e-4)
    assert f(0.0) == pytest.approx(0.0) and f(1.0) == pytest.approx(2.0 * 1.0 / (2.0 * _raw_mean(s)))
    if s == 1.0:
        for p in (0.0, 0.2, 0.5, 0.9, 1.0):
            assert f(p) == pytest.approx(SCHEDULES["cosine_increasing"](p), abs=1e-4)


def _raw_mean(s):
    n = 20000
    return sum((1 - math.cos(math.pi * ((i + 0.5) / n) ** s)) / 2 for i in range(n)) / n


def test_power_cosine_larger_s_ramps_later():
    lo, hi = power_cosine_schedule(1.0), power_cosine_schedule(3.0)
    assert hi(0.3) < lo(0.3) and hi(1.0) > lo(1.0)


@pytest.mark.parametrize("name", INCREASING)
def test_increasing_schedules_start_at_zero_end_high_and_never_decrease(name):
    f = SCHEDULES[name]
    ps = [i / 200 for i in range(201)]
    vals = [f(p) for p in ps]
    assert vals[0] == pytest.approx(0.0) and vals[-1] == pytest.approx(2.0)
    assert all(b >= a - 1e-12 for a, b in zip(vals, vals[1:]))


@pytest.mark.parametrize("name", DECREASING)
def test_decreasing_schedules_are_the_mirror_images(name):
    f, g = SCHEDULES[name], SCHEDULES[name.replace("decreasing", "increasing")]
    assert f(0.0) == pytest.approx(2.0) and f(1.0) == pytest.approx(0.0)
    for p in (0.1, 0.3, 0.7, 0.9):  # away from the step's jump at 1/2
        assert f(p) == pytest.approx(g(1.0 - p))


def test_v_and_lambda_shapes():
    v, lam = SCHEDULES["v_shape"], SCHEDULES["lambda_shape"]
    assert v(0.0) == v(1.0) == pytest.approx(2.0) and v(0.5) == pytest.approx(0.0)
    assert lam(0.0) == lam(1.0) == pytest.approx(0.0) and lam(0.5) == pytest.approx(2.0)


def test_clamp_linear_is_the_increasing_weight_with_a_floor():
    g = scheduled_guider(2.0, "clamp_linear", c=1.0)
    assert g.scale(0.0) == pytest.approx(1.0)  # the floor c, not 0
    assert g.scale(0.1) == pytest.approx(1.0)  # 2 w p = 0.4 < c
    assert g.scale(0.5) == pytest.approx(2.0)
    assert g.scale(1.0) == pytest.approx(4.0)  # 2 w at the last step
    # c = 0 is plain linear increasing; c > 0 raises the mean above w
    assert schedule_mean(clamp_linear_schedule(2.0, 0.0)) == pytest.approx(1.0, abs=1e-3)
    assert schedule_mean(clamp_linear_schedule(2.0, 1.0)) > 1.0


def test_make_schedule_rejects_unknown_names_and_stray_parameters():
    with pytest.raises(ValueError):
        make_schedule("exponential")
    with pytest.raises(ValueError):
        make_schedule("constant", s=2.0)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_same_scales_under_20_and_100_steps_at_the_same_progress(name):
    """diffusers #9641: the weight depends on progress alone, never on the raw timestep or step count."""
    g = scheduled_guider(3.0, name)
    seen = {}
    for n in (20, 100):
        sched = DDIMScheduler(1000, eta=0.0)
        sched.set_timesteps(n)
        rec = _ScaleRecorder(g)
        sample(sched, lambda x, t: (x * 0, x * 0), torch.zeros(1, 2), guider=rec, progress=False)
        seen[n] = rec.scales
    # step i of 20 is at progress i/19; step j of 100 at j/99: the grids share p = 0 and p = 1 ...
    assert seen[20][0] == pytest.approx(seen[100][0]) and seen[20][-1] == pytest.approx(seen[100][-1])
    # ... and at every progress of the 20-step grid the scale is w s(p), whatever the timesteps are
    for i, sc in enumerate(seen[20]):
        assert sc == pytest.approx(3.0 * SCHEDULES[name](sampling_progress(i, 20)))
    for j, sc in enumerate(seen[100]):
        assert sc == pytest.approx(3.0 * SCHEDULES[name](sampling_progress(j, 100)))
    # the mean over steps approaches w for both step counts (the step grids sample the same curve)
    m20, m100 = sum(seen[20]) / 20, sum(seen[100]) / 100
    if name not in ("step_increasing", "step_decreasing"):
        assert m20 == pytest.approx(3.0, rel=0.06) and m100 == pytest.approx(3.0, rel=0.02)


class _ScaleRecorder:
    def __init__(self, guider):
        self.g, self.scales = guider, []

    def guide(self, eps_cond, eps_uncond, progress):
        self.scales.append(self.g.scale(progress))
        return self.g.guide(eps_cond, eps_uncond, progress)


def _model(x, t):
    return 0.5 * x + 0.1, 0.4 * x - 0.2


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_w0_is_the_conditional_model_under_both_samplers(sampler, name):
    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    outs = []
    for guider in (scheduled_guider(0.0, name), None):
        sched = SAMPLERS[sampler]()
        sched.set_timesteps(20)
        fn = _model if guider is not None else (lambda x, t: _model(x, t)[0])
        outs.append(sample(sched, fn, x0.clone(), guider=guider, progress=False,
                           generator=torch.Generator().manual_seed(1)))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_the_schedule_changes_the_sample_under_both_samplers(sampler):
    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    outs = {}
    for name in ("constant", "linear_increasing", "linear_decreasing"):
        sched = SAMPLERS[sampler]()
        sched.set_timesteps(20)
        outs[name] = sample(sched, _model, x0.clone(), guider=scheduled_guider(2.0, name), progress=False,
                            generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(outs["constant"], outs["linear_increasing"])
    assert not torch.allclose(outs["linear_increasing"], outs["linear_decreasing"])


def test_guided_epsilon_uses_the_scheduled_weight():
    g = scheduled_guider(2.0, "linear_increasing")
    ec, eu = torch.tensor([1.0]), torch.tensor([0.0])
    assert g.guide(ec, eu, 0.0).item() == pytest.approx(1.0)  # w(0) = 0: the conditional prediction
    assert g.guide(ec, eu, 1.0).item() == pytest.approx(5.0)  # w(1) = 4: 1 + 4 (1 - 0)
    assert isinstance(g, CFGGuider)


def test_differential_against_diffusers_linear_guidance_ramp():
    """diffusers' StableVideoDiffusion ramps the guidance scale linearly over the frames (torch.linspace
    min..max); our linear schedule with mean w is the same ramp from 0 to 2w over the steps' progress."""
    n, w = 25, 1.5
    ours = [scheduled_guider(w, "linear_increasing").scale(sampling_progress(i, n)) for i in range(n)]
    ref = torch.linspace(0.0, 2 * w, n).tolist()
    assert ours == pytest.approx(ref, abs=1e-6)
