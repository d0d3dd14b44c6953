"""MoMo and MoMo-Adam against the authors' package (``momo-opt==0.1.0``) and first steps by hand.

The differential tests run ours and the package's optimizer in lock step from the same weights on
a small MLP (closure form), checking at every step that the losses and gradients agree, and at
the end the weights: float64 to 1e-10 relative, float32 to 1e-4. The package keeps its
``<g, x>`` averages in a scalar made by ``torch.zeros(1)`` / ``torch.tensor(0.)``, i.e. in the
*default* dtype; the float64 runs therefore set the default dtype to float64 so that the oracle
is itself a float64 computation.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

momo = pytest.importorskip("momo")

from zoo.optim.momo import MoMo, MoMoAdam  # noqa: E402
from tests.optim.closures import mse_closure

# float64 pins the arithmetic; float32 only checks nothing drifts: a different CPU (AMD vs Intel SIMD
# paths) reorders float32 sums enough to move a weight by ~1e-6 after the run, hence 1e-4 relative.
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-4, atol=1e-5)}
STEPS = 40


@pytest.fixture
def default_dtype():
    old = torch.get_default_dtype()
    yield lambda dt: torch.set_default_dtype(dt)
    torch.set_default_dtype(old)


def _data(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(48, 4, generator=g, dtype=dtype)
    y = torch.sin(x @ torch.randn(4, 1, generator=g, dtype=dtype)) + 0.05 * torch.randn(48, 1, generator=g, dtype=dtype)
    return x, y


def _model(dtype, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).to(dtype)


def _groups(model, spec):
    """``spec``: None (one group) or a list of per-group option dicts for the 4 parameter tensors."""
    params = list(model.parameters())
    if spec is None:
        return params
    return [{"params": [params[i]], **opts} for i, opts in zip(range(len(params)), spec)]


def _lockstep(ours_cls, ref_cls, kwargs, dtype, groups=None, steps=STEPS):
    x, y = _data(dtype)
    m1, m2 = _model(dtype), _model(dtype)
    o1 = ours_cls(_groups(m1, groups), **kwargs)
    o2 = ref_cls(_groups(m2, groups), **kwargs)
    tol = TOL[dtype]
    for _ in range(steps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the package warns on several param groups
            l2 = o2.step(mse_closure(o2, m2, x, y))
        l1 = o1.step(mse_closure(o1, m1, x, y))
        torch.testing.assert_close(l1.detach(), l2.detach(), **tol)
        for p1, p2 in zip(m1.parameters(), m2.parameters()):
            torch.testing.assert_close(p1.grad, p2.grad, **tol)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p1.detach(), p2.detach(), **tol)
    return o1, o2


GROUPS = [{"lr": 0.5}, {"lr": 0.2, "weight_decay": 0.01}, {}, {"lr": 0.0}]
ADAM_GROUPS = [{"lr": 0.05}, {"lr": 0.02, "weight_decay": 0.01}, {}, {"lr": 0.0}]

MOMO_CASES = {
    "default": ({}, None),
    "small_lr": ({"lr": 0.05}, None),
    "bias_correction": ({"bias_correction": True, "lr": 0.3}, None),
    "weight_decay": ({"weight_decay": 0.05, "lr": 0.5}, None),
    "lb": ({"lb": 0.01}, None),
    "use_fstar": ({"use_fstar": True}, None),
    "use_fstar_bc_wd": ({"use_fstar": True, "bias_correction": True, "weight_decay": 0.01}, None),
    "groups": ({"beta": 0.8}, GROUPS),
    "groups_fstar": ({"use_fstar": True, "bias_correction": True}, GROUPS),
}
ADAM_CASES = {
    "default": ({}, None),
    "large_lr": ({"lr": 1.0}, None),
    "weight_decay": ({"weight_decay": 0.05, "lr": 0.1}, None),
    "weight_decay_adamw": ({"weight_decay": 0.05, "lr": 0.1, "divide": False}, None),
    "lb_betas": ({"lb": 0.01, "betas": (0.8, 0.99), "eps": 1e-6}, None),
    "use_fstar": ({"use_fstar": True, "lr": 0.5}, None),
    "groups": ({}, ADAM_GROUPS),
    "groups_fstar": ({"use_fstar": True, "weight_decay": 0.01}, ADAM_GROUPS),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", list(MOMO_CASES))
def test_momo_matches_the_package(case, dtype, default_dtype):
    default_dtype(dtype)
    kwargs, groups = MOMO_CASES[case]
    ours, ref = _lockstep(MoMo, momo.Momo, kwargs, dtype, groups)
    if kwargs.get("use_fstar"):
        assert ours.param_groups[0]["f_star"] == pytest.approx(float(ref.state["fstar"]), rel=TOL[dtype]["rtol"])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", list(ADAM_CASES))
def test_momo_adam_matches_the_package(case, dtype, default_dtype):
    default_dtype(dtype)
    kwargs, groups = ADAM_CASES[case]
    ours, ref = _lockstep(MoMoAdam, momo.MomoAdam, kwargs, dtype, groups)
    if kwargs.get("use_fstar"):
        assert ours.param_groups[0]["f_star"] == pytest.approx(float(ref.state["fstar"]), rel=TOL[dtype]["rtol"])


@pytest.mark.parametrize(
    "ours_cls,ref_cls,kwargs",
    [(MoMo, momo.Momo, {"use_fstar": True, "weight_decay": 0.01}), (MoMoAdam, momo.MomoAdam, {"use_fstar": True, "lr": 0.1})],
    ids=["momo", "momo_adam"],
)
def test_resume_mid_run_matches_the_uninterrupted_package(ours_cls, ref_cls, kwargs, default_dtype):
    default_dtype(torch.float64)
    dtype = torch.float64
    x, y = _data(dtype)
    m_ref = _model(dtype)
    ref = ref_cls(m_ref.parameters(), **kwargs)
    m1 = _model(dtype)
    o1 = ours_cls(m1.parameters(), **kwargs)
    for _ in range(15):
        ref.step(mse_closure(ref, m_ref, x, y))
        o1.step(mse_closure(o1, m1, x, y))
    saved_model, saved_opt = copy.deepcopy(m1.state_dict()), copy.deepcopy(o1.state_dict())
    m2 = _model(dtype, seed=1)
    m2.load_state_dict(saved_model)
    o2 = ours_cls(m2.parameters(), **kwargs)
    o2.load_state_dict(saved_opt)
    for _ in range(15):
        ref.step(mse_closure(ref, m_ref, x, y))
        o2.step(mse_closure(o2, m2, x, y))
    for a, b in zip(m2.parameters(), m_ref.parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), **TOL[dtype])


@pytest.mark.parametrize("cls", [MoMo, MoMoAdam])
def test_explicit_loss_form_equals_the_closure_form(cls):
    x, y = _data(torch.float64)
    m1, m2 = _model(torch.float64), _model(torch.float64)
    o1, o2 = cls(m1.parameters(), use_fstar=True), cls(m2.parameters(), use_fstar=True)
    for _ in range(10):
        o1.step(mse_closure(o1, m1, x, y))
        loss = mse_closure(o2, m2, x, y)()
        assert o2.step(loss=loss) is loss
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="exactly one"):
        o1.step()
    with pytest.raises(ValueError, match="exactly one"):
        o1.step(mse_closure(o1, m1, x, y), loss=loss)


# ----------------------------------------------------------------------------- by hand
def _quadratic_steps(opt_factory, w0=3.0, c=0.0, steps=1):
    """Steps on ``f(w) = w^2 / 2 + c`` from ``w0`` (float64); returns the iterates."""
    w = torch.nn.Parameter(torch.tensor([w0], dtype=torch.float64))
    opt = opt_factory([w])
    out = []
    for _ in range(steps):
        def closure():
            opt.zero_grad()
            loss = (w**2).sum() / 2 + c
            loss.backward()
            return loss

        opt.step(closure)
        out.append(w.item())
    return out


# First step from w = 3: f = 4.5, g = 3, and d = g, gamma = <g, x>, so h = f and the Polyak step
# is (f - f_*) / g^2 = 0.5 (x moves by 0.5 * 3 = 1.5 to 1.5).
@pytest.mark.parametrize("bias_correction", [False, True])
def test_first_step_is_the_polyak_step_below_the_cap(bias_correction):
    (w1,) = _quadratic_steps(lambda p: MoMo(p, lr=10.0, bias_correction=bias_correction))
    assert w1 == pytest.approx(1.5, rel=1e-14)


@pytest.mark.parametrize("bias_correction", [False, True])
def test_first_step_is_truncated_at_lr(bias_correction):
    # min(lr, 0.5) = 0.1: w = 3 - 0.1 * 3 (with bias correction: min(lr/rho, .) rho g is the same)
    (w1,) = _quadratic_steps(lambda p: MoMo(p, lr=0.1, bias_correction=bias_correction))
    assert w1 == pytest.approx(2.7, rel=1e-14)


@pytest.mark.parametrize("bias_correction", [False, True])
def test_first_step_uses_the_lower_bound(bias_correction):
    # f_* = 1: (4.5 - 1) / 9 = 7/18, w = 3 - 7/6
    (w1,) = _quadratic_steps(lambda p: MoMo(p, lr=10.0, lb=1.0, bias_correction=bias_correction))
    assert w1 == pytest.approx(3.0 - 7.0 / 6.0, rel=1e-14)


def test_a_model_below_the_lower_bound_does_not_step():
    # f_* = 10 > h = 4.5: (h - f_*)_+ = 0, so w stays (without the clamp it would move away)
    (w1,) = _quadratic_steps(lambda p: MoMo(p, lr=10.0, lb=10.0))
    assert w1 == 3.0


def test_second_step_uses_the_momentum_averages():
    b = 0.9
    w1, w2 = _quadratic_steps(lambda p: MoMo(p, lr=10.0, beta=b), steps=2)
    assert w1 == pytest.approx(1.5, rel=1e-14)
    f_bar = b * 4.5 + (1 - b) * w1**2 / 2
    d = b * 3.0 + (1 - b) * w1
    gamma = b * 9.0 + (1 - b) * w1 * w1  # average of <g_j, x_j>
    h = f_bar + d * w1 - gamma
    assert w2 == pytest.approx(w1 - min(10.0, h / d**2) * d, rel=1e-12)


def test_second_step_bias_corrected_at_the_cap():
    # rho_2 = 1 - b^2; averages from zero; the cap lr / rho_2 binds
    b, lr = 0.9, 0.1
    w1, w2 = _quadratic_steps(lambda p: MoMo(p, lr=lr, beta=b, bias_correction=True), steps=2)
    assert w1 == pytest.approx(2.7, rel=1e-14)
    d = b * (1 - b) * 3.0 + (1 - b) * w1
    f_bar = b * (1 - b) * 4.5 + (1 - b) * w1**2 / 2
    gamma = b * (1 - b) * 9.0 + (1 - b) * w1 * w1
    rho = 1 - b**2
    tau = min(lr / rho, (f_bar + d * w1 - gamma) / d**2)
    assert tau == lr / rho
    assert w2 == pytest.approx(w1 - tau * d, rel=1e-12)


def test_first_momo_adam_step_by_hand():
    # D_1 = |g| + eps = 3 + eps; the step is min(lr, f (|g| + eps) / g^2) g / (|g| + eps)
    eps = 1e-8
    (w1,) = _quadratic_steps(lambda p: MoMoAdam(p, lr=10.0, eps=eps))
    assert w1 == pytest.approx(3.0 - 4.5 * (3 + eps) / 9 * 3 / (3 + eps), rel=1e-12)
    (w1,) = _quadratic_steps(lambda p: MoMoAdam(p, lr=0.5, eps=eps))  # truncated: 0.5 * 3 / (3 + eps)
    assert w1 == pytest.approx(3.0 - 0.5 * 3 / (3 + eps), rel=1e-12)


def test_momo_adam_preconditions_per_coordinate():
    # f(w) = (w_1^2 + 100 w_2^2) / 2 from (1, 1): g = (1, 100), D_1 = |g| (eps 0); truncated at lr
    # the step is lr * sign(g) in each coordinate (Adam's first step)
    w = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
    opt = MoMoAdam([w], lr=0.01, eps=0.0)
    loss = (w[0] ** 2 + 100 * w[1] ** 2) / 2
    loss.backward()
    opt.step(loss=loss)
    torch.testing.assert_close(w.detach(), torch.tensor([0.99, 0.99], dtype=torch.float64), rtol=1e-14, atol=0)


def test_first_step_weight_decay_by_hand():
    # c = 1 + lr lam; nom = c (f - f_*) + <g, x> - c <g, x>; x+ = (x - tau g) / c
    lr, lam = 0.1, 0.5
    c = 1 + lr * lam
    (w1,) = _quadratic_steps(lambda p: MoMo(p, lr=lr, weight_decay=lam))
    tau = min(lr, (c * 4.5 + 9.0 - c * 9.0) / 9.0)
    assert w1 == pytest.approx((3.0 - tau * 3.0) / c, rel=1e-14)
    (w1,) = _quadratic_steps(lambda p: MoMo(p, lr=10.0, weight_decay=0.01))  # below the cap
    c = 1 + 10.0 * 0.01
    tau = (c * 4.5 + 9.0 - c * 9.0) / 9.0
    assert tau < 10.0
    assert w1 == pytest.approx((3.0 - tau * 3.0) / c, rel=1e-14)


def test_online_lower_bound_first_step():
    # with f_* = lb = 0: h = 4.5, tau = 0.5, then f_* <- max(0, h - tau ||d||^2 / 2) = 4.5 - 2.25
    w = torch.nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
    opt = MoMo([w], lr=10.0, use_fstar=True)
    loss = (w**2).sum() / 2
    loss.backward()
    opt.step(loss=loss)
    assert w.item() == pytest.approx(1.5, rel=1e-14)
    assert opt.param_groups[0]["f_star"] == pytest.approx(2.25, rel=1e-14)


def test_bad_arguments_are_rejected():
    p = [torch.nn.Parameter(torch.zeros(2))]
    for kw in ({"lr": -1.0}, {"beta": 1.0}, {"weight_decay": -0.1}):
        with pytest.raises(ValueError):
            MoMo(p, **kw)
    for kw in ({"betas": (0.9, 1.0)}, {"eps": -1.0}, {"lr": -1.0}):
        with pytest.raises(ValueError):
            MoMoAdam(p, **kw)
