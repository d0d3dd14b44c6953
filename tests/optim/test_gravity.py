"""Gravity against pytorch_optimizer's Gravity (4.1.0) step by step, and a hand-derived first step.

Both draw ``V_0 ~ N(0, (alpha/lr)^2)`` with ``empty_like(p).normal_`` at a parameter's first step,
parameter by parameter in group order. Alignment: the reference draws from torch's global
generator, so the global seed is set right before each optimizer's first step; ours draws either
from the same global generator (``generator=None``) or from a ``torch.Generator`` seeded with the
same number, whose CPU stream equals the global one's (both cases are tested). Gradients are fed in
lock step: the same float64 gradient tensors are written into both parameter sets before each step.
"""

from __future__ import annotations

import copy

import pytest
import torch

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

from zoo.optim import Gravity  # noqa: E402

TOL = 1e-10
SEED = 1234


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(6, 4), (6,), (1, 6), (1,)]
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64)) for s in shapes]


def _grads(steps, seed=7):
    g = torch.Generator().manual_seed(seed)
    shapes = [(6, 4), (6,), (1, 6), (1,)]
    # gradient scales from 0.01 to 10 exercise both the linear and the saturated part of zeta
    return [[torch.randn(s, generator=g, dtype=torch.float64) * 10 ** (2 * torch.rand(1, generator=g).item() - 1)
             for s in shapes] for _ in range(steps)]


def _groups(params, spec):
    if spec is None:
        return params
    return [{"params": params[:2], **spec[0]}, {"params": params[2:], **spec[1]}]


CASES = {
    "defaults": dict(kw=dict(lr=0.1, alpha=0.01, beta=0.9), groups=None),
    "large_alpha_small_beta": dict(kw=dict(lr=0.05, alpha=0.2, beta=0.5), groups=None),
    "multi_group": dict(kw=dict(lr=0.1, alpha=0.01, beta=0.9),
                        groups=[{"lr": 0.3, "alpha": 0.05}, {"beta": 0.99}]),
}


def _feed(params, grads):
    for p, g in zip(params, grads):
        p.grad = g.clone()


def _run(opt, params, grads, seed=SEED, reseed=True):
    for i, gs in enumerate(grads):
        _feed(params, gs)
        if i == 0 and reseed:
            torch.manual_seed(seed)  # the reference (and generator=None) draw V_0 here
        opt.step()


def _assert_close(a_params, b_params, tol=TOL):
    for a, b in zip(a_params, b_params):
        err = (a - b).abs().max().item()
        assert err <= tol, f"max |difference| {err:.3e} > {tol:.0e}"


@pytest.mark.parametrize("seeded_generator", [False, True], ids=["global_rng", "generator"])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_the_reference_step_by_step(name, seeded_generator):
    case = CASES[name]
    ours_p, ref_p = _params(), _params()
    gen = torch.Generator().manual_seed(SEED) if seeded_generator else None
    ours = Gravity(_groups(ours_p, case["groups"]), generator=gen, **case["kw"])
    ref = pytorch_optimizer.Gravity(_groups(ref_p, case["groups"]), **case["kw"])
    grads = _grads(30)
    for i, gs in enumerate(grads):
        for opt, ps in ((ours, ours_p), (ref, ref_p)):
            _feed(ps, gs)
            if i == 0:
                torch.manual_seed(SEED if not (seeded_generator and opt is ours) else 999)
            opt.step()
        if i == 0:
            _assert_close([ours.state[p]["v"] for p in ours_p], [ref.state[p]["v"] for p in ref_p])
        _assert_close(ours_p, ref_p)


def test_matches_the_reference_on_a_model_with_its_own_gradients():
    torch.manual_seed(0)
    m1 = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    m2 = copy.deepcopy(m1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=g, dtype=torch.float64)
    y = torch.sin(x.sum(1, keepdim=True))
    ours = Gravity(m1.parameters(), lr=0.1)
    ref = pytorch_optimizer.Gravity(m2.parameters(), lr=0.1)
    losses = []
    for i in range(50):
        for opt, m in ((ours, m1), (ref, m2)):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(m(x), y)
            loss.backward()
            if i == 0:
                torch.manual_seed(SEED)
            opt.step()
        losses.append(loss.item())
        _assert_close(m1.parameters(), m2.parameters())
    assert losses[-1] < 0.8 * losses[0]


def test_resume_from_state_dict_matches_the_reference():
    case = CASES["multi_group"]
    grads = _grads(12)
    ours_p, ref_p = _params(), _params()
    ours = Gravity(_groups(ours_p, case["groups"]), **case["kw"])
    ref = pytorch_optimizer.Gravity(_groups(ref_p, case["groups"]), **case["kw"])
    _run(ours, ours_p, grads[:6])
    _run(ref, ref_p, grads[:6])
    saved_p = [p.detach().clone() for p in ours_p]
    saved = copy.deepcopy(ours.state_dict())

    new_p = [torch.nn.Parameter(p.clone()) for p in saved_p]
    ours2 = Gravity(_groups(new_p, case["groups"]), **case["kw"])
    ours2.load_state_dict(saved)
    _run(ours2, new_p, grads[6:], reseed=False)  # no new draw: V comes from the state
    _run(ref, ref_p, grads[6:], reseed=False)
    _assert_close(new_p, ref_p)
    assert [g["step"] for g in ours2.param_groups] == [12, 12]


def test_first_step_by_hand():
    """t = 1: beta_1 = (beta + 1) / 3, V_1 = beta_1 V_0 + (1 - beta_1) zeta, w_1 = w_0 - lr V_1."""
    lr, alpha, beta = 0.2, 0.05, 0.9
    w0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    g = torch.tensor([0.5, -2.0, 0.1], dtype=torch.float64)
    v0 = torch.empty(3, dtype=torch.float64).normal_(0.0, alpha / lr, generator=torch.Generator().manual_seed(3))
    m = 1 / 2.0  # 1 / max|g|
    zeta = torch.tensor([0.5 / (1 + 1.0**2), -2.0 / (1 + 4.0**2), 0.1 / (1 + 0.2**2)], dtype=torch.float64)
    torch.testing.assert_close(zeta, g / (1 + (g / m) ** 2), rtol=0, atol=1e-15)
    beta_1 = (beta * 1 + 1) / (1 + 2)
    expected = w0 - lr * (beta_1 * v0 + (1 - beta_1) * zeta)

    w = torch.nn.Parameter(w0.clone())
    opt = Gravity([w], lr=lr, alpha=alpha, beta=beta, generator=torch.Generator().manual_seed(3))
    w.grad = g.clone()
    opt.step()
    torch.testing.assert_close(opt.state[w]["v"], beta_1 * v0 + (1 - beta_1) * zeta, rtol=0, atol=1e-15)
    torch.testing.assert_close(w.detach(), expected, rtol=0, atol=1e-15)
    # the second step uses beta_2 = (2 beta + 1) / 4
    v1 = opt.state[w]["v"].clone()
    w.grad = g.clone()
    opt.step()
    beta_2 = (beta * 2 + 1) / 4
    torch.testing.assert_close(w.detach(), expected - lr * (beta_2 * v1 + (1 - beta_2) * zeta), rtol=0, atol=1e-15)


def test_initial_velocity_has_std_alpha_over_lr_and_follows_the_generator():
    def v0(seed, lr=0.1, alpha=0.01):
        w = torch.nn.Parameter(torch.zeros(20000, dtype=torch.float64))
        opt = Gravity([w], lr=lr, alpha=alpha, beta=0.0, generator=torch.Generator().manual_seed(seed))
        w.grad = torch.zeros_like(w)  # zeta = 0, so V_1 = beta_1 V_0 with beta_1 = (0 + 1) / 3
        opt.step()
        return opt.state[w]["v"] * 3

    a, b, c = v0(0), v0(0), v0(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(a.std().item() - 0.01 / 0.1) < 0.005


def test_a_group_at_lr_zero_waits_for_a_positive_lr():
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = Gravity([w], lr=0.0)
    w.grad = torch.ones_like(w)
    opt.step()
    assert torch.equal(w.detach(), torch.ones(3, dtype=torch.float64)) and "v" not in opt.state[w]
    opt.param_groups[0]["lr"] = 0.1
    opt.step()
    assert torch.isfinite(opt.state[w]["v"]).all() and not torch.equal(w.detach(), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("kw", [dict(lr=-1.0), dict(alpha=-0.1), dict(beta=1.0)])
def test_invalid_arguments_are_refused(kw):
    with pytest.raises(ValueError, match="Gravity"):
        Gravity(_params(), **kw)
