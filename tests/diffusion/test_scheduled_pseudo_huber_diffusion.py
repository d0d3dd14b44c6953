"""Scheduled pseudo-Huber: the loss against hand values and its L2/L1 limits, the exponential schedule's
end points, gradient flow and options; the experiment's arms share data/init/budget, the L2 arm is the
harness's epsilon-MSE, the corruption is deterministic, the quick budget yields every metric."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.diffusion import ConditionalDenoiser, DDPMScheduler, classifier_free_guidance_loss
from zoo.diffusion.scheduled_pseudo_huber import exponential_delta, pseudo_huber, pseudo_huber_denoising_loss
from zoo.experiments import scheduled_pseudo_huber_diffusion as exp
from tests.experiments.budgets import quick_run_metrics, spec_budget

ENTRY = "scheduled_pseudo_huber_diffusion"


def test_pseudo_huber_hand_values_and_limits():
    r = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert torch.allclose(pseudo_huber(r, 1.0), torch.tensor([math.sqrt(26) - 1, 0.0]))
    assert torch.allclose(pseudo_huber(r, 2.0), torch.tensor([4 * (math.sqrt(1 + 25 / 4) - 1), 0.0]))
    # per-sample delta
    assert torch.allclose(pseudo_huber(r[:1].repeat(2, 1), torch.tensor([1.0, 2.0])),
                          torch.tensor([math.sqrt(26) - 1, 4 * (math.sqrt(1 + 25 / 4) - 1)]))
    # element-wise variant: sum of scalar pseudo-Huber terms
    el = (math.sqrt(1 + 9) - 1) + (math.sqrt(1 + 16) - 1)
    assert abs(float(pseudo_huber(r[:1], 1.0, norm="element")) - el) < 1e-5
    # delta -> inf: ||r||^2 / 2 ; delta -> 0: delta ||r||
    assert abs(float(pseudo_huber(r[:1], 1e4)) - 12.5) < 1e-3
    assert abs(float(pseudo_huber(r[:1], 1e-3)) / 1e-3 - 5.0) < 1e-2
    with pytest.raises(ValueError):
        pseudo_huber(r, 1.0, norm="bogus")


def test_exponential_schedule_end_points_and_monotone():
    t = torch.tensor([0, 250, 500, 1000])
    d = exponential_delta(t, 1000, 1.0, 0.1)
    assert torch.allclose(d, torch.tensor([1.0, 0.1 ** 0.25, 0.1 ** 0.5, 0.1]))
    assert torch.all(d[1:] < d[:-1])  # robust (small delta) at large t
    assert torch.allclose(exponential_delta(t, 1000, 0.3, 0.3), torch.full((4,), 0.3))


def _model_and_batch():
    torch.manual_seed(0)
    model = ConditionalDenoiser(2, 3, 100, hidden=16, depth=1)
    sched = DDPMScheduler(100)
    x = torch.randn(64, 2) * 3
    y = torch.randint(0, 3, (64,))
    return model, sched, x, y


def test_large_delta_is_the_epsilon_mse_and_small_delta_differs():
    model, sched, x, y = _model_and_batch()
    l2 = classifier_free_guidance_loss(model, sched, x, y, p_uncond=0.1, generator=torch.Generator().manual_seed(1))
    ph = pseudo_huber_denoising_loss(model, sched, x, y, delta_0=1e5, p_uncond=0.1,
                                     generator=torch.Generator().manual_seed(1))
    assert abs(float(l2) - float(ph)) < 1e-4 * float(l2)
    small = pseudo_huber_denoising_loss(model, sched, x, y, delta_0=0.1, p_uncond=0.1,
                                        generator=torch.Generator().manual_seed(1))
    assert float(small) < 0.8 * float(l2)


def test_schedule_and_scale_options_are_honoured_and_gradients_flow():
    model, sched, x, y = _model_and_batch()

    def run(**kw):
        return pseudo_huber_denoising_loss(model, sched, x, y, p_uncond=0.1, generator=torch.Generator().manual_seed(2), **kw)

    fixed, scheduled = run(delta_0=0.1), run(delta_0=1.0, delta_T=0.1)
    assert float(fixed) != pytest.approx(float(scheduled), rel=1e-3)
    assert float(run(delta_0=0.1, delta_scale="none")) != pytest.approx(float(fixed), rel=1e-3)
    assert float(run(delta_0=0.1, norm="element")) != pytest.approx(float(fixed), rel=1e-3)
    # hand-check the scheduled value with the same draws
    g = torch.Generator().manual_seed(2)
    from zoo.diffusion.classifier_free_guidance import drop_labels
    c = drop_labels(y, 0.1, model.null_class, g)
    t = sched.sample_timesteps(64, generator=g)
    eps = torch.randn(x.shape, generator=g)
    r = eps - model(sched.add_noise(x, eps, t), t, c)
    delta = (1.0 * 0.1 ** (t.float() / 100)) * math.sqrt(2)
    want = (2 * delta ** 2 * (torch.sqrt(1 + r.pow(2).sum(1) / delta ** 2) - 1) / 2).mean()
    assert torch.allclose(scheduled, want, rtol=1e-5)
    scheduled.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(gr is not None for gr in grads) and sum(float(gr.abs().sum()) for gr in grads) > 0


def test_corruption_is_deterministic_and_arms_share_data_init_budget(monkeypatch):
    cfg, _ = spec_budget(ENTRY, quick=True)
    x = torch.randn(1000, 2)
    a, ma = exp.corrupt(cfg, x)
    b, mb = exp.corrupt(cfg, x)
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert int(ma.sum()) == round(cfg["outlier_frac"] * 1000)
    assert torch.equal(a[~ma], x[~ma])
    assert exp.outlier_mask(cfg, a[ma]).float().mean() > 0.99 and not exp.outlier_mask(cfg, x).any()
    # arms: L2 is train_denoiser's own epsilon-MSE, the two PH arms differ only in the schedule
    assert exp.arm_loss(cfg, "l2") is None
    fx, sc = exp.arm_loss(cfg, "ph_fixed"), exp.arm_loss(cfg, "ph_sched")
    assert fx.keywords["delta_0"] == cfg["delta_T"] and fx.keywords["delta_T"] is None
    assert sc.keywords["delta_0"] == cfg["delta_0"] and sc.keywords["delta_T"] == cfg["delta_T"]
    calls = []

    def spy(recipe, domain, seed, device="cpu", loss=None, x_train=None, y_train=None):
        calls.append((recipe, seed, loss, x_train))
        raise StopIteration

    monkeypatch.setattr(exp, "train_denoiser", spy)
    from zoo.harness import Env, JobContext
    from tests.experiments.budgets import quick_env
    env = quick_env()
    setup = exp.EXPERIMENT.setup(cfg, env)
    for arm in exp.ARMS:
        with pytest.raises(StopIteration):
            exp.EXPERIMENT.job(cfg, arm, 3, JobContext(env, setup, None, None))
    assert len({c[0] for c in calls}) == 1 and {c[1] for c in calls} == {3}
    assert all(c[3] is setup["x_train"] for c in calls)
    assert calls[0][2] is None and calls[1][2] is not None and calls[2][2] is not None
    assert not torch.equal(setup["x_train"], setup["domain"].data.x_train)


def test_quick_budget_runs_end_to_end(tmp_path):
    m = quick_run_metrics(ENTRY, tmp_path)
    assert set(m) == set(exp.ARMS)
    assert m["l2"]["real_outlier_mass"] == [0.0]
