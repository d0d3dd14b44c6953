"""SAM against pytorch_optimizer's SAM (4.1.0) step by step, a hand-derived step, and GradScaler use.

The reference squares the per-tensor norms in float32 (``get_global_gradient_norm``), so its
``eps_hat`` carries float32 rounding even for float64 weights; the lock-step tests replace that
helper (only inside the reference's module) by the same sum of squared norms kept in float64,
which makes a 1e-10 comparison meaningful. One test runs the unpatched reference at 1e-6.
"""

from __future__ import annotations

import copy

import pytest
import torch

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
import pytorch_optimizer.optimizer.sam as ref_sam_module  # noqa: E402

from zoo.optim import SAM  # noqa: E402
from tests.optim.closures import mse_closure

TOL = 1e-10


def _exact_global_norm(param_groups, device=None, *, weight_adaptive=False):
    """The reference's squared global norm, summed in float64 instead of float32."""
    total = torch.zeros(1, dtype=torch.float64)
    for group in param_groups:
        adaptive = weight_adaptive and group.get("adaptive", False)
        for p in group["params"]:
            if p.grad is not None:
                g = p.grad * p.abs() if adaptive else p.grad
                total += g.double().square().sum()
    return total


@pytest.fixture
def exact_reference(monkeypatch):
    monkeypatch.setattr(ref_sam_module, "get_global_gradient_norm", _exact_global_norm)
    return pytorch_optimizer.SAM


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()


def _data(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 4, generator=g, dtype=torch.float64)
    return x, torch.sin(x.sum(1, keepdim=True)) + 0.1 * torch.randn(32, 1, generator=g, dtype=torch.float64)


def _groups(model, spec):
    """``spec`` None: all parameters in one group; else one dict of options per layer."""
    if spec is None:
        return model.parameters()
    layers = [model[0], model[2]]
    return [{"params": list(layer.parameters()), **opts} for layer, opts in zip(layers, spec)]


CASES = {
    "sgd": dict(base=torch.optim.SGD, kw=dict(rho=0.05, lr=0.05), groups=None),
    "large_rho_momentum": dict(base=torch.optim.SGD, kw=dict(rho=0.5, lr=0.05, momentum=0.9), groups=None),
    "adaptive": dict(base=torch.optim.SGD, kw=dict(rho=0.5, adaptive=True, lr=0.05), groups=None),
    "adam": dict(base=torch.optim.Adam, kw=dict(rho=0.1, lr=1e-2), groups=None),
    "multi_group": dict(base=torch.optim.SGD, kw=dict(rho=0.05, lr=0.05, momentum=0.5),
                        groups=[{"rho": 0.3, "adaptive": True}, {"rho": 0.1, "lr": 0.02}]),
}


def _pair(case, ref_cls):
    ours_model, ref_model = _model(), _model()
    ours = SAM(_groups(ours_model, case["groups"]), case["base"], **case["kw"])
    ref = ref_cls(_groups(ref_model, case["groups"]), case["base"], **case["kw"])
    return (ours, ours_model), (ref, ref_model)


def _ref_step(ref, model, x, y):
    closure = mse_closure(ref, model, x, y)
    loss = closure()  # the reference expects the gradients at w before step(closure)
    ref.step(closure)
    return loss


def _assert_close(model_a, model_b, tol=TOL):
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        err = (a - b).abs().max().item()
        assert err <= tol, f"max |difference| {err:.3e} > {tol:.0e}"


@pytest.mark.parametrize("name", list(CASES))
def test_matches_the_reference_step_by_step(name, exact_reference):
    (ours, om), (ref, rm) = _pair(CASES[name], exact_reference)
    x, y = _data()
    for _ in range(25):
        loss_ours = ours.step(mse_closure(ours, om, x, y))
        loss_ref = _ref_step(ref, rm, x, y)
        assert abs(loss_ours.item() - loss_ref.item()) <= TOL
        _assert_close(om, rm)
    assert loss_ours.item() < 0.9 * torch.nn.functional.mse_loss(_model()(x), y).item()


def test_matches_the_unpatched_reference_to_float32_norm_precision():
    (ours, om), (ref, rm) = _pair(CASES["adaptive"], pytorch_optimizer.SAM)
    x, y = _data()
    for _ in range(10):
        ours.step(mse_closure(ours, om, x, y))
        _ref_step(ref, rm, x, y)
    _assert_close(om, rm, tol=1e-6)


def test_resume_from_state_dict_matches_the_reference(exact_reference):
    case = CASES["adam"]
    (ours, om), (ref, rm) = _pair(case, exact_reference)
    x, y = _data()
    for _ in range(5):
        ours.step(mse_closure(ours, om, x, y))
        _ref_step(ref, rm, x, y)
    saved_model, saved_opt = copy.deepcopy(om.state_dict()), copy.deepcopy(ours.state_dict())
    assert any("exp_avg" in s for s in saved_opt["state"].values()), "the base optimizer's state is saved"

    om2 = _model(seed=5)
    om2.load_state_dict(saved_model)
    ours2 = SAM(om2.parameters(), case["base"], **case["kw"])
    ours2.load_state_dict(saved_opt)
    assert ours2.base_optimizer.state is ours2.state and ours2.base_optimizer.param_groups is ours2.param_groups
    for _ in range(5):
        ours2.step(mse_closure(ours2, om2, x, y))
        _ref_step(ref, rm, x, y)
    _assert_close(om2, rm)


def test_first_step_by_hand_on_a_linear_least_squares():
    """One SAM-SGD step on L(w) = 0.5 ||X w - y||^2 / n, derived by hand (adaptive off and on)."""
    g = torch.Generator().manual_seed(3)
    X, y = torch.randn(10, 3, generator=g, dtype=torch.float64), torch.randn(10, generator=g, dtype=torch.float64)
    w0 = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)

    def grad(w):
        return X.T @ (X @ w - y) / len(y)

    rho, lr = 0.3, 0.1
    for adaptive in (False, True):
        t = w0.abs() if adaptive else torch.ones(3, dtype=torch.float64)
        g0 = grad(w0)
        eps_hat = rho * t**2 * g0 / torch.linalg.norm(t * g0)  # Eq. 2 (ASAM when adaptive)
        expected = w0 - lr * grad(w0 + eps_hat)  # Eq. 3, the step taken at w0

        w = torch.nn.Parameter(w0.clone())
        opt = SAM([w], torch.optim.SGD, rho=rho, adaptive=adaptive, lr=lr)

        def closure():
            opt.zero_grad()
            loss = 0.5 * ((X @ w - y) ** 2).mean()
            loss.backward()
            return loss

        loss = opt.step(closure)
        assert abs(loss.item() - 0.5 * ((X @ w0 - y) ** 2).mean().item()) <= 1e-14, "returns L(w)"
        torch.testing.assert_close(w.detach(), expected, rtol=0, atol=1e-12)


def test_manual_first_and_second_step_equal_step_withmse_closure():
    x, y = _data()
    m1, m2 = _model(), _model()
    o1 = SAM(m1.parameters(), torch.optim.SGD, rho=0.2, lr=0.05, momentum=0.9)
    o2 = SAM(m2.parameters(), torch.optim.SGD, rho=0.2, lr=0.05, momentum=0.9)
    for _ in range(5):
        o1.step(mse_closure(o1, m1, x, y))
        torch.nn.functional.mse_loss(m2(x), y).backward()
        o2.first_step(zero_grad=True)
        torch.nn.functional.mse_loss(m2(x), y).backward()
        o2.second_step(zero_grad=True)
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)


def test_step_without_a_closure_says_how_to_call_it():
    model = _model()
    opt = SAM(model.parameters(), lr=0.1)
    with pytest.raises(RuntimeError, match=r"needs a closure.*opt\.step\(closure\)"):
        opt.step()


def test_scheduler_and_added_groups_reach_the_base_optimizer():
    model = _model()
    opt = SAM([{"params": model[0].parameters()}], torch.optim.SGD, rho=0.1, lr=0.1)
    opt.add_param_group({"params": model[2].parameters(), "lr": 0.01})
    assert opt.base_optimizer.param_groups is opt.param_groups and len(opt.param_groups) == 2
    assert opt.param_groups[1]["rho"] == 0.1 and opt.param_groups[1]["momentum"] == 0
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    x, y = _data()
    opt.step(mse_closure(opt, model, x, y))
    sched.step()
    assert [g["lr"] for g in opt.base_optimizer.param_groups] == [0.05, 0.005]


def _scaler_run(device, enabled, steps=5, autocast=False):
    """SAM-SGD driven by hand through a GradScaler, as the class docstring says."""
    x, y = (t.to(device) for t in _data())
    model = _model().float().to(device)
    x, y = x.float(), y.float()
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler(device, init_scale=2.0**12, enabled=enabled)

    def loss_fn():
        with torch.autocast(device, dtype=torch.float16, enabled=autocast):
            return torch.nn.functional.mse_loss(model(x).float(), y)

    for _ in range(steps):
        opt.zero_grad()
        scaler.scale(loss_fn()).backward()
        scaler.unscale_(opt)
        opt.first_step(zero_grad=True)
        scaler.scale(loss_fn()).backward()
        opt.restore()
        scaler.step(opt.base_optimizer)
        scaler.update()
    return model, opt, scaler, loss_fn


def _plain_run(device, steps=5):
    x, y = (t.to(device).float() for t in _data())
    model = _model().float().to(device)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.05, momentum=0.9)
    for _ in range(steps):
        opt.step(mse_closure(opt, model, x, y))
    return model


def test_grad_scaler_disabled_on_cpu_is_the_plain_step():
    model, *_ = _scaler_run("cpu", enabled=False)
    for a, b in zip(model.parameters(), _plain_run("cpu").parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("device", [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")),
])
def test_grad_scaler_enabled_unscales_both_passes(device):
    """A power-of-two loss scale is exact in float32, so the scaled run equals the plain one."""
    model, _, scaler, _ = _scaler_run(device, enabled=True)
    assert scaler.get_scale() == 2.0**12, "no step was skipped"
    for a, b in zip(model.parameters(), _plain_run(device).parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("device", [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")),
])
def test_grad_scaler_skips_a_non_finite_step_and_keeps_w(device):
    model, opt, scaler, loss_fn = _scaler_run(device, enabled=True, steps=2)
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    scaler.scale(loss_fn()).backward()
    next(model.parameters()).grad[0, 0] = float("inf")  # an overflow in the first pass
    scaler.unscale_(opt)
    opt.first_step(zero_grad=True)
    scaler.scale(loss_fn()).backward()
    opt.restore()
    scaler.step(opt.base_optimizer)
    scale = scaler.get_scale()
    scaler.update()
    assert scaler.get_scale() < scale, "update() lowers the scale"
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b), "w is restored and the base step skipped"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_grad_scaler_with_float16_autocast_on_cuda_makes_progress():
    model, _, scaler, loss_fn = _scaler_run("cuda", enabled=True, steps=1, autocast=True)
    first = loss_fn().item()
    model, _, scaler, loss_fn = _scaler_run("cuda", enabled=True, steps=60, autocast=True)
    last = loss_fn().item()
    assert last < 0.9 * first and all(torch.isfinite(p).all() for p in model.parameters())
