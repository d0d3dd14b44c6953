"""SSO: the surrogate and its Armijo inner steps against a flat reference, the target-space projection, counters.

No package exists. :func:`_reference` restates the paper's SSO step for a linear model
``z = X w`` (targets = outputs) with the inner Armijo search described in zoo.optim.sso, on flat
float64 tensors; the optimizer must follow it in lock step (tolerance 1e-12).
"""

from __future__ import annotations

import copy

import pytest
import torch

from zoo.optim.sso import SSO, sso_loss


def _data(n=16, d=3, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, k, generator=g, dtype=torch.float64)
    return x, y


def _mse(z, y):
    return 0.5 * ((z - y) ** 2).sum(1).mean()


def _reference(x, y, w, eta, m, init_step=10.0, c=0.1, backtrack=0.5, max_backtracks=30, steps=1):
    """SSO on z = x @ w (w: d x k), the loss L(z) = mean_i 1/2 ||z_i - y_i||^2."""
    b = x.shape[0]
    for _ in range(steps):
        z_t = x @ w
        g_z = (z_t - y) / b  # ∇_z L
        h = lambda v: float((g_z * (x @ v)).sum() + ((x @ v - z_t) ** 2).sum() / (2 * eta * b))  # noqa: E731
        grad = lambda v: x.T @ g_z + x.T @ (x @ v - z_t) / (eta * b)  # noqa: E731
        s = init_step
        for _ in range(m):
            gr = grad(w)
            d = -gr
            slope = float((gr * d).sum())
            h0 = h(w)
            for _ in range(max_backtracks + 1):
                cand = w + s * d
                if h(cand) <= h0 + c * s * slope:
                    break
                s *= backtrack
            w = cand
    return w


def _model(w0):
    model = torch.nn.Linear(w0.shape[0], w0.shape[1], bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w0.T)
    return model


def _step(opt, model, x, y):
    loss_fn = sso_loss(opt, _mse)

    def closure():
        opt.zero_grad()
        loss = loss_fn(model, x, y)
        loss.backward()
        return loss

    return opt.step(closure)


@pytest.mark.parametrize("eta,m", [(0.5, 1), (0.5, 3), (5.0, 4), (50.0, 10)])
def test_follows_the_reference_in_lock_step(eta, m):
    x, y = _data()
    w0 = torch.tensor([[0.3, -0.2], [1.0, 0.5], [-0.7, 0.1]], dtype=torch.float64)
    model = _model(w0)
    opt = SSO(model.parameters(), eta=eta, m=m)
    for steps in (1, 2, 3):
        _step(opt, model, x, y)
        torch.testing.assert_close(model.weight.detach().T, _reference(x, y, w0, eta, m, steps=steps), rtol=1e-12, atol=1e-12)


def test_many_inner_steps_reach_the_target_space_projection():
    """argmin_w <g, Xw> + ||Xw - z_t||^2 / (2 eta b) = w_t - eta b (X^T X)^{-1} X^T g: projected target SGD."""
    x, y = _data(n=32)
    w0 = torch.zeros(3, 2, dtype=torch.float64)
    eta = 2.0
    model = _model(w0)
    opt = SSO(model.parameters(), eta=eta, m=300)
    _step(opt, model, x, y)
    g_z = (x @ w0 - y) / 32
    exact = w0 - eta * 32 * torch.linalg.solve(x.T @ x, x.T @ g_z)
    torch.testing.assert_close(model.weight.detach().T, exact, rtol=1e-6, atol=1e-8)
    # ... which moves the targets by -eta * per-example gradient, projected on the model's range
    z_move = x @ exact - x @ w0
    proj = x @ torch.linalg.lstsq(x, -eta * 32 * g_z).solution
    torch.testing.assert_close(z_move, proj, rtol=1e-6, atol=1e-8)


def test_one_inner_step_starts_from_the_ordinary_gradient():
    x, y = _data()
    w0 = torch.tensor([[0.3, -0.2], [1.0, 0.5], [-0.7, 0.1]], dtype=torch.float64)
    model = _model(w0)
    opt = SSO(model.parameters(), eta=1.0, m=1, init_step=0.01)  # a step so small that Armijo accepts it
    _step(opt, model, x, y)
    g = x.T @ ((x @ w0 - y) / 16)
    torch.testing.assert_close(model.weight.detach().T, w0 - 0.01 * g, rtol=1e-13, atol=1e-13)


def test_without_targets_it_is_sgd_with_step_eta():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = SSO([w], eta=0.3, lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, -2.0], dtype=torch.float64) * (1 - 2 * 0.3 * 0.5))


def test_counters_and_the_targets_of_one_step_only():
    x, y = _data()
    model = _model(torch.zeros(3, 2, dtype=torch.float64))
    opt = SSO(model.parameters(), eta=1.0, m=4)
    for _ in range(3):
        _step(opt, model, x, y)
    g = opt.param_groups[0]
    assert g["outer_steps"] == 3 and g["inner_steps"] == 12 and g["surrogate_evals"] >= 24
    assert opt._targets is None  # a later plain closure does not reuse stale targets


def test_zero_lr_freezes_a_group_and_lr_scales_the_inner_steps():
    x, y = _data()
    model = torch.nn.Linear(3, 2).double()
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    opt = SSO([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.0}], eta=1.0, m=3)
    _step(opt, model, x, y)
    assert torch.equal(model.bias.detach(), b0) and not torch.equal(model.weight.detach(), w0)


def test_resume_is_bit_exact_in_target_mode():
    x, y = _data()
    model = _model(torch.zeros(3, 2, dtype=torch.float64))
    opt = SSO(model.parameters(), eta=3.0, m=3)
    for _ in range(2):
        _step(opt, model, x, y)
    saved_m, saved_o = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    for _ in range(3):
        _step(opt, model, x, y)
    model2 = _model(torch.zeros(3, 2, dtype=torch.float64))
    model2.load_state_dict(saved_m)
    opt2 = SSO(model2.parameters(), eta=3.0, m=3)
    opt2.load_state_dict(saved_o)
    for _ in range(3):
        _step(opt2, model2, x, y)
    assert torch.equal(model.weight, model2.weight)


def test_invalid_settings():
    w = torch.nn.Parameter(torch.ones(2))
    for kw in ({"eta": 0.0}, {"m": 0}, {"lr": -1.0}, {"c": 1.0}, {"backtrack": 1.0}):
        with pytest.raises(ValueError):
            SSO([w], **kw)
    with pytest.raises(ValueError, match="closure"):
        SSO([w]).step()


def test_the_line_search_restarts_at_every_outer_step():
    """A steep batch (small accepted steps) then a flat one: the flat batch starts again from init_step."""
    x, y = _data()
    w0 = torch.tensor([[0.3, -0.2], [1.0, 0.5], [-0.7, 0.1]], dtype=torch.float64)
    model = _model(w0)
    opt = SSO(model.parameters(), eta=1.0, m=2)
    _step(opt, model, 30.0 * x, y)
    steep_s = opt.param_groups[0]["step_size"]
    w1 = _reference(30.0 * x, y, w0, 1.0, 2)
    torch.testing.assert_close(model.weight.detach().T, w1, rtol=1e-12, atol=1e-12)
    _step(opt, model, 0.1 * x, y)
    torch.testing.assert_close(model.weight.detach().T, _reference(0.1 * x, y, w1, 1.0, 2), rtol=1e-12, atol=1e-12)
    assert opt.param_groups[0]["step_size"] > steep_s
