"""Tests for zoo.optim.u_dog (U-DoG). No reference package exists, so:

* the first two steps of a 1-D quadratic are computed by hand from the update equations;
* a readable flat-vector twin of the equations (``_reference``, plain tensors, float64) is run in
  lock-step with the optimizer on a two-layer model split in two parameter groups, with the same
  closures: every parameter, ``y`` and the scalars agree to 1e-12 over 40 steps, and after a
  resume from ``state_dict`` mid-run;
* behaviour the method promises: each step moves at most ``c r̄`` (DoG's stability), the output is
  invariant to rescaling the loss (``eps = 0``), acceleration on a deterministic ill-conditioned
  quadratic (U-DoG at T steps beats DoG at 2T steps, the same gradient evaluations), and the
  weights reduce to UniXGrad's ``α_t = t`` when ``r̄`` stays constant;
* the departures: closure required, ``lr = 0`` freezes a group, parameters without gradients.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from zoo.optim.dog import DoG
from zoo.optim.u_dog import UDoG


def _quad_closure(opt, x, target=3.0, scale=1.0):
    def closure():
        opt.zero_grad()
        loss = scale * 0.5 * (x - target).pow(2).sum()
        loss.backward()
        return loss
    return closure


def test_first_two_steps_by_hand():
    x = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = UDoG([x], reps_rel=0.1, eps=0.0)
    opt.step(_quad_closure(opt, x))
    # r_ε = 0.1 (1 + 1) = 0.2; α_1 = 1, ω_1 = 0.2; x̃_1 = x_0 = 1, m_1 = -2.
    r = 0.2
    eta_x = r / math.sqrt(4.0)
    x1 = 1.0 - 1.0 * eta_x * (-2.0)  # 1.2
    g1 = x1 - 3.0  # at x̄_1 = x_1
    G1 = 4.0 + g1 * g1
    y1 = 1.0 - r / math.sqrt(G1) * g1
    assert float(x.detach()) == pytest.approx(x1, rel=1e-14)
    assert float(opt.state[x]["y"]) == pytest.approx(y1, rel=1e-14)
    group = opt.param_groups[0]
    assert group["alpha"] == 1.0 and group["G"] == pytest.approx(G1, rel=1e-14)
    rbar1 = max(r, abs(x1 - 1.0), abs(y1 - 1.0))
    assert group["rbar"] == pytest.approx(rbar1, rel=1e-14)

    opt.step(_quad_closure(opt, x))
    R2 = r + rbar1
    a2, w2 = R2 / rbar1, R2
    W1, W2 = r, r + w2
    xt = (W1 * x1 + w2 * y1) / W2
    m2 = xt - 3.0
    ex = rbar1 / math.sqrt(G1 + a2 * a2 * m2 * m2)
    x2 = y1 - a2 * ex * m2
    xb2 = (W1 * x1 + w2 * x2) / W2
    g2 = xb2 - 3.0
    G2 = G1 + a2 * a2 * (m2 * m2 + g2 * g2)
    y2 = y1 - a2 * rbar1 / math.sqrt(G2) * g2
    assert float(x.detach()) == pytest.approx(xb2, rel=1e-13)
    assert float(opt.state[x]["y"]) == pytest.approx(y2, rel=1e-13)
    assert group["alpha"] == pytest.approx(a2, rel=1e-14)


# ----------------------------------------------------------------------------- the readable twin
class _Reference:
    """U-DoG on one flat float64 vector per group, written line by line from the module docstring."""

    def __init__(self, x0: list[torch.Tensor], reps_rel: float, lr: float = 1.0, eps: float = 1e-8):
        self.x0 = [v.clone() for v in x0]
        self.y = [v.clone() for v in x0]
        self.xbar = [v.clone() for v in x0]
        self.rbar = [reps_rel * (1 + float(v.norm())) for v in x0]
        self.R = [0.0] * len(x0)
        self.W = [0.0] * len(x0)
        self.G = [eps] * len(x0)
        self.lr = lr

    def step(self, grad_fn):
        """``grad_fn(list of group vectors) -> list of group gradients``."""
        n = len(self.x0)
        R = [self.R[k] + self.rbar[k] for k in range(n)]
        alpha = [R[k] / self.rbar[k] for k in range(n)]
        omega = [alpha[k] * self.rbar[k] for k in range(n)]
        Wn = [self.W[k] + omega[k] for k in range(n)]
        xt = [(self.W[k] * self.xbar[k] + omega[k] * self.y[k]) / Wn[k] for k in range(n)]
        m = grad_fn(xt)
        x = []
        for k in range(n):
            eta_x = self.lr * self.rbar[k] / math.sqrt(self.G[k] + alpha[k] ** 2 * float(m[k] @ m[k]))
            x.append(self.y[k] - alpha[k] * eta_x * m[k])
        xb = [(self.W[k] * self.xbar[k] + omega[k] * x[k]) / Wn[k] for k in range(n)]
        g = grad_fn(xb)
        for k in range(n):
            self.G[k] += alpha[k] ** 2 * (float(m[k] @ m[k]) + float(g[k] @ g[k]))
            self.y[k] = self.y[k] - alpha[k] * self.lr * self.rbar[k] / math.sqrt(self.G[k]) * g[k]
            self.rbar[k] = max(self.rbar[k], float((x[k] - self.x0[k]).norm()), float((self.y[k] - self.x0[k]).norm()))
        self.R, self.W, self.xbar = R, Wn, xb


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)).double()


def _data():
    g = torch.Generator().manual_seed(7)
    return torch.randn(32, 4, generator=g, dtype=torch.float64), torch.randn(32, 2, generator=g, dtype=torch.float64)


def _groups(model):
    return [list(model[0].parameters()), list(model[2].parameters())]


def _flat(ts):
    return torch.cat([t.detach().reshape(-1) for t in ts])


def _grad_fn(model, groups, x, y):
    shapes = [[p.shape for p in ps] for ps in groups]

    def fn(vectors):
        m = copy.deepcopy(model)
        gs = _groups(m)
        with torch.no_grad():
            for ps, v, sh in zip(gs, vectors, shapes):
                off = 0
                for p, s in zip(ps, sh):
                    p.copy_(v[off: off + p.numel()].view(s))
                    off += p.numel()
        m.zero_grad()
        nn.functional.mse_loss(m(x), y).backward()
        return [_flat([p.grad for p in ps]) for ps in gs]
    return fn


def _closure(opt, model, x, y):
    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss
    return closure


@pytest.mark.parametrize("resume_at", [None, 15])
def test_matches_the_readable_twin_with_two_groups(resume_at):
    x, y = _data()
    model = _net()
    groups = _groups(model)
    ref = _Reference([_flat(ps) for ps in groups], reps_rel=1e-3)
    opt = UDoG([{"params": groups[0]}, {"params": groups[1]}], reps_rel=1e-3)
    fn = _grad_fn(model, groups, x, y)
    for t in range(40):
        if resume_at is not None and t == resume_at:
            saved_m, saved_o = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
            model = _net(seed=5)
            model.load_state_dict(saved_m)
            groups = _groups(model)
            opt = UDoG([{"params": groups[0]}, {"params": groups[1]}], reps_rel=1e-3)
            opt.load_state_dict(saved_o)
        opt.step(_closure(opt, model, x, y))
        ref.step(fn)
        for k, ps in enumerate(groups):
            torch.testing.assert_close(_flat(ps), ref.xbar[k], rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(_flat([opt.state[p]["y"] for p in ps]), ref.y[k], rtol=1e-12, atol=1e-14)
            assert opt.param_groups[k]["rbar"] == pytest.approx(ref.rbar[k], rel=1e-12)
            assert opt.param_groups[k]["G"] == pytest.approx(ref.G[k], rel=1e-12)
    assert ref.rbar[0] > 10 * 1e-3 * (1 + float(ref.x0[0].norm())), "r̄ grew: the run left the warm-up"


def test_each_step_moves_at_most_c_rbar():
    x, y = _data()
    model = _net()
    opt = UDoG(model.parameters(), reps_rel=1e-2, lr=0.7)
    ps = list(model.parameters())
    for _ in range(30):
        rbar = opt.param_groups[0]["rbar"] if opt.param_groups[0]["step"] else None
        y_prev = _flat([opt.state[p]["y"] for p in ps]) if rbar else None
        opt.step(_closure(opt, model, x, y))
        if rbar:
            moved = float((_flat([opt.state[p]["y"] for p in ps]) - y_prev).norm())
            assert moved <= 0.7 * rbar * (1 + 1e-12)


def test_invariant_to_rescaling_the_loss():
    outs = []
    for scale in (1.0, 1000.0):
        x = nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
        opt = UDoG([x], reps_rel=1e-4, eps=0.0)
        for _ in range(50):
            opt.step(_quad_closure(opt, x, scale=scale))
        outs.append(x.detach().clone())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=0)


def _ill_quadratic():
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(20, 20, generator=g, dtype=torch.float64))
    h = q @ torch.diag(torch.logspace(0, -3, 20, dtype=torch.float64)) @ q.T
    b = torch.randn(20, generator=g, dtype=torch.float64)
    xs = torch.linalg.solve(h, b)
    fstar = float(0.5 * xs @ h @ xs - b @ xs)
    return h, b, fstar


def _gap(cls, steps):
    h, b, fstar = _ill_quadratic()
    x = nn.Parameter(torch.zeros(20, dtype=torch.float64))
    opt = cls([x], reps_rel=1e-6)

    def closure():
        opt.zero_grad()
        loss = 0.5 * x @ h @ x - b @ x
        loss.backward()
        return loss
    for _ in range(steps):
        opt.step(closure)
    with torch.no_grad():
        return float(0.5 * x @ h @ x - b @ x) - fstar


def test_accelerates_on_a_deterministic_quadratic():
    """At equal gradient evaluations (U-DoG: 2 per step) U-DoG ends 10x closer to the optimum than DoG."""
    u, d = _gap(UDoG, 500), _gap(DoG, 1000)
    assert u < 0.1 * d, f"U-DoG {u:.3g} vs DoG {d:.3g}"


def test_weights_are_unixgrads_when_rbar_is_constant():
    """With r_ε far above every distance travelled, r̄ is constant and α_t = t."""
    x = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = UDoG([x], reps_rel=1e-3, lr=1e-6)  # tiny steps: r̄ stays r_ε
    for t in range(1, 8):
        opt.step(_quad_closure(opt, x))
        assert opt.param_groups[0]["alpha"] == pytest.approx(t, rel=1e-12)
        assert opt.param_groups[0]["W"] == pytest.approx(opt.param_groups[0]["rbar"] * t * (t + 1) / 2, rel=1e-12)


# ----------------------------------------------------------------------------- departures
def test_needs_a_closure_and_checks_arguments():
    x = nn.Parameter(torch.ones(2))
    with pytest.raises(RuntimeError, match="closure"):
        UDoG([x]).step()
    for kw in ({"lr": -1.0}, {"reps_rel": 0.0}, {"eps": -1.0}):
        with pytest.raises(ValueError):
            UDoG([x], **kw)


def test_lr_zero_group_is_frozen_and_the_other_moves():
    x = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    z = nn.Parameter(torch.tensor([5.0], dtype=torch.float64))
    opt = UDoG([{"params": [x]}, {"params": [z], "lr": 0.0}], reps_rel=0.1)

    def closure():
        opt.zero_grad()
        loss = 0.5 * ((x - 3) ** 2 + (z - 3) ** 2).sum()
        loss.backward()
        return loss
    for _ in range(5):
        opt.step(closure)
    assert float(z.detach()) == 5.0 and opt.param_groups[1]["step"] == 0
    assert float(x.detach()) != 1.0


def test_parameter_without_gradient_stays_and_starts_later():
    x = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    z = nn.Parameter(torch.tensor([5.0], dtype=torch.float64))
    opt = UDoG([x, z], reps_rel=0.1)
    use_z = False

    def closure():
        opt.zero_grad()
        loss = 0.5 * (x - 3).pow(2).sum() + (0.5 * (z - 3).pow(2).sum() if use_z else 0.0)
        loss.backward()
        return loss
    for _ in range(4):
        opt.step(closure)
    assert float(z.detach()) == 5.0 and "y" not in opt.state.get(z, {})
    use_z = True
    for _ in range(4):
        opt.step(closure)
    assert float(z.detach()) < 5.0 and torch.equal(opt.state[z]["x0"], torch.tensor([5.0], dtype=torch.float64))


def test_parameter_that_loses_its_gradient_stays_at_its_average():
    x = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    z = nn.Parameter(torch.tensor([5.0], dtype=torch.float64))
    opt = UDoG([x, z], reps_rel=0.1)
    use_z = True

    def closure():
        opt.zero_grad()
        loss = 0.5 * (x - 3).pow(2).sum() + (0.5 * (z - 3).pow(2).sum() if use_z else 0.0)
        loss.backward()
        return loss
    for _ in range(4):
        opt.step(closure)
    z_then = z.detach().clone()
    use_z = False
    for _ in range(3):
        opt.step(closure)
    assert torch.equal(z.detach(), z_then) and torch.equal(opt.state[z]["xbar"], z_then)
