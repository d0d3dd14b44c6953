"""SGDW (decoupled weight decay for SGD with momentum): hand steps, the paper's Algorithm 1, and a
lock-step differential test against ``pytorch_optimizer.SGDW`` (weight_decouple=True).

Tolerance of the differential test: float64, 1e-12 absolute after 40 steps (both libraries apply
the same floating-point operations in the same order up to reassociation).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from zoo.optim.sgdw import SGDW

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")


def _param(values, dtype=torch.float64) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(values, dtype=dtype))


@pytest.mark.parametrize("foreach", [True, False])
def test_hand_computed_steps(foreach: bool) -> None:
    p = _param([1.0, -2.0])
    opt = SGDW([p], lr=0.1, momentum=0.9, weight_decay=0.5, foreach=foreach)
    g1, g2 = torch.tensor([0.2, 0.4], dtype=torch.float64), torch.tensor([-1.0, 0.5], dtype=torch.float64)
    p.grad = g1.clone()
    opt.step()
    # theta (1 - lr wd) - lr g, buf = g
    want1 = torch.tensor([1.0, -2.0], dtype=torch.float64) * (1 - 0.1 * 0.5) - 0.1 * g1
    torch.testing.assert_close(p.detach(), want1, rtol=0, atol=1e-15)
    p.grad = g2.clone()
    opt.step()
    buf = 0.9 * g1 + g2
    want2 = want1 * (1 - 0.05) - 0.1 * buf
    torch.testing.assert_close(p.detach(), want2, rtol=0, atol=1e-15)
    torch.testing.assert_close(opt.state[p]["momentum_buffer"], buf, rtol=0, atol=1e-15)


@pytest.mark.parametrize("foreach", [True, False])
def test_nesterov_and_dampening(foreach: bool) -> None:
    p = _param([1.0])
    opt = SGDW([p], lr=0.1, momentum=0.5, weight_decay=0.0, nesterov=True, foreach=foreach)
    for g in (2.0, 1.0):
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
    # step 1: buf = 2, d = 2 + 0.5*2 = 3; step 2: buf = 0.5*2 + 1 = 2, d = 1 + 0.5*2 = 2
    assert p.item() == pytest.approx(1.0 - 0.1 * 3 - 0.1 * 2, abs=1e-15)
    q = _param([1.0])
    o2 = SGDW([q], lr=0.1, momentum=0.5, dampening=0.5, foreach=foreach)
    for g in (2.0, 1.0):
        q.grad = torch.tensor([g], dtype=torch.float64)
        o2.step()
    # buf_1 = g_1 = 2 (undampened, as torch SGD); buf_2 = 0.5*2 + 0.5*1 = 1.5
    assert q.item() == pytest.approx(1.0 - 0.1 * 2 - 0.1 * 1.5, abs=1e-15)


def test_papers_algorithm_1_with_a_schedule_when_lambda_is_passed_as_wd_over_alpha() -> None:
    """Without momentum, SGDW at lr = alpha eta_t and wd = lambda / alpha is Algorithm 1 exactly:
    theta_t = theta_{t-1} - eta_t alpha g_t - eta_t lambda theta_{t-1}."""
    alpha, lam, steps = 0.2, 0.05, 12
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(6, generator=g, dtype=torch.float64)
    grads = [torch.randn(6, generator=g, dtype=torch.float64) for _ in range(steps)]
    p = torch.nn.Parameter(p0.clone())
    opt = SGDW([p], lr=alpha, weight_decay=lam / alpha)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    theta = p0.clone()
    for t, gr in enumerate(grads):
        eta = 0.5 * (1 + math.cos(math.pi * t / steps))
        theta = theta - eta * alpha * gr - eta * lam * theta
        p.grad = gr.clone()
        opt.step()
        sched.step()
    torch.testing.assert_close(p.detach(), theta, rtol=0, atol=1e-14)


def test_decay_is_decoupled_from_the_gradient_unlike_l2() -> None:
    """Without momentum, L2 and decoupled decay coincide (the paper's Proposition 1 for SGD);
    with momentum they do not: L2's decay enters the buffer, SGDW's never does."""
    g = torch.Generator().manual_seed(1)
    p0 = torch.randn(4, generator=g, dtype=torch.float64)
    grads = [torch.randn(4, generator=g, dtype=torch.float64) for _ in range(5)]

    def run(cls, momentum):
        p = torch.nn.Parameter(p0.clone())
        opt = cls([p], lr=0.1, momentum=momentum, weight_decay=0.3)
        for gr in grads:
            p.grad = gr.clone()
            opt.step()
        return p.detach(), opt

    torch.testing.assert_close(run(SGDW, 0.0)[0], run(torch.optim.SGD, 0.0)[0], rtol=0, atol=1e-14)
    (pw, ow), (pl, _) = run(SGDW, 0.9), run(torch.optim.SGD, 0.9)
    assert (pw - pl).abs().max() > 1e-3
    # the buffer holds the raw gradients only: sum_k 0.9^(n-k) g_k
    buf = torch.zeros(4, dtype=torch.float64)
    for gr in grads:
        buf = 0.9 * buf + gr if buf.abs().sum() > 0 else gr.clone()
    p_ = next(iter(ow.state))
    torch.testing.assert_close(ow.state[p_]["momentum_buffer"], buf, rtol=0, atol=1e-14)


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()


def _groups(model: torch.nn.Module) -> list[dict]:
    first, second = model[0], model[2]
    return [{"params": list(first.parameters()), "lr": 0.05, "weight_decay": 0.1},
            {"params": list(second.parameters()), "lr": 0.02, "weight_decay": 0.01, "momentum": 0.5}]


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("foreach", [True, False])
def test_matches_pytorch_optimizer_lock_step_with_groups_and_resume(nesterov: bool, foreach: bool) -> None:
    ours_m, ref_m = _mlp(), _mlp()
    ours = SGDW(_groups(ours_m), momentum=0.9, nesterov=nesterov, foreach=foreach)
    ref = pytorch_optimizer.SGDW(_groups(ref_m), momentum=0.9, nesterov=nesterov, weight_decouple=True,
                                 foreach=foreach)
    g = torch.Generator().manual_seed(3)
    data = [(torch.randn(16, 5, generator=g, dtype=torch.float64), torch.randint(0, 2, (16,), generator=g))
            for _ in range(40)]

    def step(model, opt, x, y):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for i, (x, y) in enumerate(data):
        if i == 20:  # resume ours from a state_dict mid-run
            saved = copy.deepcopy(ours.state_dict())
            fresh_m = _mlp(seed=99)
            fresh_m.load_state_dict(ours_m.state_dict())
            ours_m = fresh_m
            ours = SGDW(_groups(ours_m), momentum=0.9, nesterov=nesterov, foreach=foreach)
            ours.load_state_dict(saved)
        step(ours_m, ours, x, y)
        step(ref_m, ref, x, y)
    for a, b in zip(ours_m.parameters(), ref_m.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_parameters_without_grad_are_skipped_and_float32_kept() -> None:
    a, b = _param([1.0, 2.0], torch.float32), _param([3.0], torch.float32)
    opt = SGDW([a, b], lr=0.1, momentum=0.9, weight_decay=0.1)
    a.grad = torch.ones(2)
    opt.step()
    assert b.item() == 3.0 and b not in opt.state
    assert a.dtype == torch.float32 and a.detach().tolist() == pytest.approx([0.99 - 0.1, 1.98 - 0.1])


def test_invalid_arguments() -> None:
    p = _param([1.0])
    for kw in ({"lr": -1.0}, {"momentum": 1.0}, {"weight_decay": -0.1}, {"nesterov": True},
               {"nesterov": True, "momentum": 0.9, "dampening": 0.1}):
        with pytest.raises(ValueError):
            SGDW([p], **kw)
