"""Tests for zoo.optim.schedule_free.

* differential tests against the authors' package (``schedulefree==1.4.1``: the fast
  ``SGDScheduleFree`` / ``AdamWScheduleFree`` and the memory-hungry ``*Reference`` classes): same
  initial weights, four tensors in three parameter groups (own lr, weight decay and warmup), one
  tensor without a gradient on odd steps, gradients of a noisy quadratic taken at each
  optimizer's own point with the same noise, an ``eval()``/``train()`` round trip mid-run and a
  resume of ours from ``state_dict`` mid-run; after the run the weights agree in train mode
  (``y``), the ``z`` buffers agree, and after ``eval()`` the weights (``x``) agree. Tolerance:
  float64 ``1e-10``, float32 ``1e-5``, relative to the largest entry of the tensor;
* a direct transcription of the paper's three sequences (x, y, z stored explicitly, averaging
  weights from the current lr), which needs no package: the same run, and a decaying schedule
  where only the departure (current-lr weights) distinguishes us from the package;
* the train/eval contract: ``eval()`` puts ``x`` in the parameters, ``step`` in eval mode raises,
  a checkpoint saved in eval mode resumes; lr 0 freezes everything; BatchNorm recalibration.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from zoo.optim import ScheduleFreeAdamW, ScheduleFreeSGD, bn_recalibrate

try:
    import schedulefree
except ImportError:  # only the differential tests need the reference package
    schedulefree = None
needs_reference = pytest.mark.skipif(schedulefree is None, reason="the reference package schedulefree is not installed")

STEPS = 60
SHAPES = [(5, 3), (7,), (2, 2, 3), (4,)]
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}  # relative to the largest entry of each tensor

CASES = {  # name: (ours, reference names, defaults, per-group overrides)
    "sgd": (ScheduleFreeSGD, ("SGDScheduleFree", "SGDScheduleFreeReference"),
            {"lr": 0.2, "momentum": 0.9, "warmup_steps": 10},
            [{}, {"lr": 0.05, "weight_decay": 0.1}, {"warmup_steps": 3, "momentum": 0.8, "r": 1.0}]),
    "adamw": (ScheduleFreeAdamW, ("AdamWScheduleFree", "AdamWScheduleFreeReference"),
              {"lr": 0.05, "betas": (0.9, 0.99), "warmup_steps": 10},
              [{}, {"lr": 0.02, "weight_decay": 0.2}, {"warmup_steps": 4, "betas": (0.8, 0.95), "weight_lr_power": 1.0}]),
}


def _init(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]


def _groups(params, overrides):
    return [{"params": params[:2], **overrides[0]}, {"params": params[2:3], **overrides[1]},
            {"params": params[3:], **overrides[2]}]


def _noise(dtype, steps=STEPS, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=g, dtype=dtype) for s in SHAPES] for _ in range(steps)]


def _set_grads(params, noise_t, t):
    """Gradient of sum_i h_i (p_i - 1)^2 / 2 plus noise, at each optimizer's own point; the last
    tensor has no gradient on odd steps."""
    for i, (p, e) in enumerate(zip(params, noise_t)):
        if i == len(params) - 1 and t % 2 == 1:
            p.grad = None
        else:
            h = torch.linspace(0.5, 2.0, p.numel(), dtype=p.dtype).reshape(p.shape)
            p.grad = (h * (p.detach() - 1.0) + 0.3 * e).clone()


def _close(a, b, dtype, what):
    scale = float(b.abs().max())
    torch.testing.assert_close(a, b, rtol=TOL[dtype], atol=TOL[dtype] * max(scale, 1e-12), msg=lambda m: f"{what}: {m}")


def _run_ours(cls, defaults, overrides, dtype, noise, resume_at=None, cycle_at=None):
    params = [nn.Parameter(p) for p in _init(dtype)]
    opt = cls(_groups(params, overrides), **defaults)
    opt.train()
    for t in range(len(noise)):
        if t == resume_at:  # a fresh optimizer and fresh tensors from the checkpoint
            saved_p, saved_o = copy.deepcopy([p.detach() for p in params]), copy.deepcopy(opt.state_dict())
            params = [nn.Parameter(p.clone()) for p in saved_p]
            opt = cls(_groups(params, overrides), **defaults)
            opt.load_state_dict(saved_o)
        if t == cycle_at:
            opt.eval()
            opt.train()
        _set_grads(params, noise[t], t)
        opt.step()
    return params, opt


def _run_theirs(name, defaults, overrides, dtype, noise, cycle_at=None):
    params = [nn.Parameter(p) for p in _init(dtype)]
    opt = getattr(schedulefree, name)(_groups(params, overrides), **defaults)
    opt.train()
    for t in range(len(noise)):
        if t == cycle_at:
            opt.eval()
            opt.train()
        _set_grads(params, noise[t], t)
        opt.step()
    return params, opt


@needs_reference
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("ref", [0, 1], ids=["fast", "reference"])
@pytest.mark.parametrize("case", list(CASES))
def test_agrees_with_the_authors_package(case, ref, dtype, capsys):
    cls, names, defaults, overrides = CASES[case]
    noise = _noise(dtype)
    ours, opt = _run_ours(cls, defaults, overrides, dtype, noise, resume_at=STEPS // 2, cycle_at=20)
    theirs, ref_opt = _run_theirs(names[ref], defaults, overrides, dtype, noise, cycle_at=20)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        _close(a.detach(), b.detach(), dtype, f"y of tensor {i}")
        _close(opt.state[a]["z"], ref_opt.state[b]["z"], dtype, f"z of tensor {i}")
        if "exp_avg_sq" in opt.state[a]:
            _close(opt.state[a]["exp_avg_sq"], ref_opt.state[b]["exp_avg_sq"], dtype, f"v of tensor {i}")
    opt.eval()
    ref_opt.eval()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        _close(a.detach(), b.detach(), dtype, f"x of tensor {i}")
        assert not torch.allclose(a.detach(), opt.state[a]["z"]), "x is not z"  # the test sees the swap


# ----------------------------------------------------------------------------- the paper's equations


def _transcription(case, dtype, noise, lrs=None):
    """x, y, z stored explicitly; c_{t+1} = w_t / sum w with w_t = t^r gamma_t^p (current gamma_t)."""
    _, _, defaults, overrides = CASES[case]
    groups = [{**defaults, **o} for o in overrides]
    members = [[0, 1], [2], [3]]
    p0 = _init(dtype)
    x, y, z = [p.clone() for p in p0], [p.clone() for p in p0], [p.clone() for p in p0]
    v = [torch.zeros_like(p) for p in p0]
    wsum = [0.0] * 3
    for t in range(len(noise)):
        _set_grads(y, noise[t], t)
        for gi, (gr, idx) in enumerate(zip(groups, members)):
            base = gr["lr"] if lrs is None else gr["lr"] * lrs[t]
            gamma = base * min(1.0, (t + 1) / gr["warmup_steps"]) if gr["warmup_steps"] else base
            beta = gr["momentum"] if case == "sgd" else gr["betas"][0]
            w = (t + 1) ** gr.get("r", 0.0) * gamma ** gr.get("weight_lr_power", 2.0) if gamma > 0 else 0.0
            wsum[gi] += w
            c = w / wsum[gi] if wsum[gi] > 0 else 0.0
            for i in idx:
                if y[i].grad is None:
                    continue
                g = y[i].grad
                if case == "sgd":
                    d = g + gr.get("weight_decay", 0.0) * y[i]
                else:
                    b2 = gr["betas"][1]
                    v[i] = b2 * v[i] + (1 - b2) * g * g
                    d = g / ((v[i] / (1 - b2 ** (t + 1))).sqrt() + 1e-8) + gr.get("weight_decay", 0.0) * y[i]
                z[i] = z[i] - gamma * d
                x[i] = (1 - c) * x[i] + c * z[i]
                y[i] = (1 - beta) * z[i] + beta * x[i]
    return x, y, z


@pytest.mark.parametrize("case", list(CASES))
def test_matches_a_transcription_of_the_paper(case):
    dtype = torch.float64
    noise = _noise(dtype)
    cls, _, defaults, overrides = CASES[case]
    ours, opt = _run_ours(cls, defaults, overrides, dtype, noise)
    x, y, z = _transcription(case, dtype, noise)
    for i, p in enumerate(ours):
        _close(p.detach(), y[i], dtype, f"y of tensor {i}")
        _close(opt.state[p]["z"], z[i], dtype, f"z of tensor {i}")
    opt.eval()
    for i, p in enumerate(ours):
        _close(p.detach(), x[i], dtype, f"x of tensor {i}")


@pytest.mark.parametrize("case", list(CASES))
def test_a_decaying_scheduler_weights_the_average_by_the_current_lr(case):
    """The departure from the package: c_{t+1} uses gamma_t (the paper), not max_i gamma_i."""
    dtype = torch.float64
    noise = _noise(dtype, steps=30)
    lrs = [1.0 if t < 15 else 0.5 ** (t - 14) for t in range(30)]
    cls, _, defaults, overrides = CASES[case]
    params = [nn.Parameter(p) for p in _init(dtype)]
    opt = cls(_groups(params, overrides), **defaults)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lrs[min(t, 29)])
    for t in range(30):
        _set_grads(params, noise[t], t)
        opt.step()
        sched.step()
    x, y, _ = _transcription(case, dtype, noise, lrs=lrs)
    for i, p in enumerate(params):
        _close(p.detach(), y[i], dtype, f"y of tensor {i}")


def test_the_first_step_is_plain_sgd_and_the_second_averages():
    """c_1 = 1, so x_1 = y_1 = z_1 = p0 - lr g0; then with uniform weights c_2 = 1/2."""
    p = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = ScheduleFreeSGD([p], lr=0.1, momentum=0.75)
    p.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([0.9, -2.1], dtype=torch.float64))
    p.grad = torch.tensor([2.0, 0.0], dtype=torch.float64)
    opt.step()
    z2 = torch.tensor([0.7, -2.1], dtype=torch.float64)
    x2 = 0.5 * torch.tensor([0.9, -2.1], dtype=torch.float64) + 0.5 * z2
    torch.testing.assert_close(p.detach(), 0.25 * z2 + 0.75 * x2, rtol=0, atol=1e-15)
    opt.eval()
    torch.testing.assert_close(p.detach(), x2, rtol=0, atol=1e-15)


def test_warmup_scales_the_first_steps():
    p = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = ScheduleFreeSGD([p], lr=1.0, warmup_steps=4)
    p.grad = torch.ones(1, dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([-0.25], dtype=torch.float64))  # gamma_1 = lr / 4
    assert opt.param_groups[0]["scheduled_lr"] == 0.25


# ----------------------------------------------------------------------------- modes and checkpoints


@pytest.mark.parametrize("cls", [ScheduleFreeSGD, ScheduleFreeAdamW])
def test_eval_mode_holds_x_and_step_requires_train(cls):
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(6, dtype=torch.float64))
    opt = cls([p], lr=0.1)
    for _ in range(5):
        p.grad = torch.randn(6, dtype=torch.float64)
        opt.step()
    y = p.detach().clone()
    opt.eval()
    assert not opt.train_mode
    assert not torch.allclose(p.detach(), y)
    with pytest.raises(RuntimeError, match="train"):
        opt.step()
    opt.eval()  # idempotent
    opt.train()
    torch.testing.assert_close(p.detach(), y, rtol=0, atol=1e-13)
    opt.train()  # idempotent
    torch.testing.assert_close(p.detach(), y, rtol=0, atol=1e-13)


@pytest.mark.parametrize("case", list(CASES))
def test_a_checkpoint_saved_in_eval_mode_resumes(case):
    """The package's advice: save in eval mode (weights x); load, train(), continue (issues #22, #32)."""
    dtype = torch.float64
    cls, _, defaults, overrides = CASES[case]
    noise = _noise(dtype, steps=40)
    ours, opt = _run_ours(cls, defaults, overrides, dtype, noise)
    params = [nn.Parameter(p) for p in _init(dtype)]
    opt = cls(_groups(params, overrides), **defaults)
    for t in range(40):
        if t == 20:
            opt.eval()
            saved_p, saved_o = copy.deepcopy([p.detach() for p in params]), copy.deepcopy(opt.state_dict())
            params = [nn.Parameter(p.clone()) for p in saved_p]
            opt = cls(_groups(params, overrides), **defaults)
            opt.load_state_dict(saved_o)
            assert not opt.train_mode
            opt.train()
        _set_grads(params, noise[t], t)
        opt.step()
    for a, b in zip(params, ours):
        _close(a.detach(), b.detach(), dtype, "resumed y")


@pytest.mark.parametrize("cls", [ScheduleFreeSGD, ScheduleFreeAdamW])
def test_gradients_are_not_modified(cls):
    p = nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = cls([p], lr=0.1, weight_decay=0.5)
    g = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    p.grad = g.clone()
    opt.step()
    assert torch.equal(p.grad, g)


@pytest.mark.parametrize("cls", [ScheduleFreeSGD, ScheduleFreeAdamW])
def test_lr_zero_freezes_x_y_and_z(cls):
    p = nn.Parameter(torch.randn(4, dtype=torch.float64))
    opt = cls([p], lr=0.1, weight_lr_power=0.0)  # even with lr-independent averaging weights
    for _ in range(3):
        p.grad = torch.randn(4, dtype=torch.float64)
        opt.step()
    opt.param_groups[0]["lr"] = 0.0
    y, z, weight_sum = p.detach().clone(), opt.state[p]["z"].clone(), opt.param_groups[0]["weight_sum"]
    for _ in range(3):
        p.grad = torch.randn(4, dtype=torch.float64)
        opt.step()
    assert torch.equal(p.detach(), y) and torch.equal(opt.state[p]["z"], z)
    assert opt.param_groups[0]["weight_sum"] == weight_sum, "a step with lr 0 has averaging weight 0"


def test_arguments_are_checked():
    p = [nn.Parameter(torch.zeros(1))]
    for bad in ({"lr": -1.0}, {"momentum": 0.0}, {"momentum": 1.0}, {"weight_decay": -1.0}, {"warmup_steps": -1}):
        with pytest.raises(ValueError):
            ScheduleFreeSGD(p, **bad)
    for bad in ({"betas": (0.0, 0.9)}, {"betas": (0.9, 1.0)}, {"eps": -1.0}):
        with pytest.raises(ValueError):
            ScheduleFreeAdamW(p, **bad)


# ----------------------------------------------------------------------------- BatchNorm


def test_bn_recalibrate_recomputes_the_statistics_at_x():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=0.3), nn.Linear(4, 1))
    opt = ScheduleFreeSGD(model.parameters(), lr=0.1)
    batches = [torch.randn(16, 3) for _ in range(6)]
    for xb in batches:
        opt.zero_grad()
        model(xb).pow(2).mean().backward()
        opt.step()
    model.eval()
    bn_recalibrate(model, [(xb, None) for xb in batches], optimizer=opt, num_batches=4)
    assert not opt.train_mode and not model.training and model[1].momentum == 0.3
    with torch.no_grad():  # at x, the equal-weight average of the batch statistics of 4 batches
        feats = [model[0](xb) for xb in batches[:4]]
    mean = torch.stack([f.mean(0) for f in feats]).mean(0)
    var = torch.stack([f.var(0, unbiased=True) for f in feats]).mean(0)
    torch.testing.assert_close(model[1].running_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[1].running_var, var, rtol=1e-5, atol=1e-6)
    assert int(model[1].num_batches_tracked) == 4
