"""OASIS: the paper's equations by hand and against a flat-vector reference, the closure contract, the HVP modes.

No reference package exists. :func:`_reference` restates the paper's Algorithm 1 (stochastic,
both gradients of the smoothness estimate on the batch of the step) on one flat float64 vector
with the exact Hessian of a quadratic, and draws the same Rademacher vectors (seed + k, in
parameter order); the optimizer must follow it in lock step (tolerance 1e-10 relative).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from zoo.optim.oasis import OASIS, create_graph_loss


def _quad(d=5, n_batches=3, seed=0):
    """Per-batch quadratics f_b(w) = 1/2 w^T A_b w - c_b^T w (A_b positive definite, not diagonal)."""
    g = torch.Generator().manual_seed(seed)
    mats, vecs = [], []
    for _ in range(n_batches):
        m = torch.randn(d, d, generator=g, dtype=torch.float64)
        mats.append(m @ m.T / d + torch.diag(torch.rand(d, generator=g, dtype=torch.float64) * 3 + 0.1))
        vecs.append(torch.randn(d, generator=g, dtype=torch.float64))
    return mats, vecs


def _rademacher(shapes, k, seed=0):
    gen = torch.Generator().manual_seed(seed + k)
    return [(torch.randint(0, 2, s, generator=gen, dtype=torch.int8) * 2 - 1).to(torch.float64) for s in shapes]


def _reference(mats, vecs, w0, steps, split, eta0=1e-3, beta2=0.99, alpha=1e-5):
    """The paper's Algorithm 1 on the flat vector; ``split`` = the parameter tensor sizes (for z)."""
    w_prev, w = None, w0.clone()
    d_run, eta, theta = None, eta0, math.inf
    for k in range(steps):
        a, c = mats[k % len(mats)], vecs[k % len(vecs)]
        grad = lambda v: a @ v - c  # noqa: E731
        z = torch.cat([t.reshape(-1) for t in _rademacher([(s,) for s in split], k)])
        sample = z * (a @ z)
        d_run = sample.clone() if d_run is None else beta2 * d_run + (1 - beta2) * sample
        dhat = d_run.abs().clamp(min=alpha)
        g = grad(w)
        if k == 0:
            new_eta, new_theta = eta, math.inf
        else:
            dw, dg = w - w_prev, g - grad(w_prev)
            smooth = 0.5 * math.sqrt(float((dw * dhat * dw).sum()) / float((dg / dhat * dg).sum()))
            new_eta = min(math.sqrt(1 + theta) * eta, smooth)
            new_theta = new_eta / eta
        w_prev, w = w, w - new_eta * g / dhat
        eta, theta = new_eta, new_theta
    return w


def _closure_for(opt, params, mats, vecs, k, create_graph=True, log=None):
    a, c = mats[k % len(mats)], vecs[k % len(vecs)]

    def closure():
        opt.zero_grad()
        w = torch.cat([p.reshape(-1) for p in params])
        if log is not None:
            log.append(w.detach().clone())
        loss = 0.5 * w @ a @ w - c @ w
        loss.backward(create_graph=create_graph)
        return loss

    return closure


def _run(params, opt, mats, vecs, steps, create_graph=True):
    for k in range(steps):
        opt.step(_closure_for(opt, params, mats, vecs, k, create_graph))


@pytest.mark.parametrize("groups", [False, True])
def test_follows_the_paper_in_lock_step(groups):
    mats, vecs = _quad()
    w0 = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=torch.float64)
    for steps in (1, 2, 3, 25):
        a = torch.nn.Parameter(w0[:2].clone())
        b = torch.nn.Parameter(w0[2:].clone())
        opt = OASIS([{"params": [a]}, {"params": [b]}] if groups else [a, b])
        _run([a, b], opt, mats, vecs, steps)
        ref = _reference(mats, vecs, w0, steps, [2, 3])
        torch.testing.assert_close(torch.cat([a.detach(), b.detach()]), ref, rtol=1e-10, atol=1e-12)


def test_diagonal_quadratic_by_hand():
    """f = 1/2 sum h_i w_i^2: Hutchinson is exact, eta_1 = 1/2 and the iterates halve from then on."""
    h = torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64)
    w = torch.nn.Parameter(torch.tensor([2.0, -1.0, 4.0], dtype=torch.float64))
    w0 = w.detach().clone()
    opt = OASIS([w], eta0=0.1)

    def closure():
        opt.zero_grad()
        loss = 0.5 * (h * w * w).sum()
        loss.backward(create_graph=True)
        return loss

    opt.step(closure)
    torch.testing.assert_close(w.detach(), w0 - 0.1 * w0)  # Dhat^{-1} g = w
    w1 = w.detach().clone()
    opt.step(closure)
    assert opt.param_groups[0]["eta"] == pytest.approx(0.5, rel=1e-12)
    assert opt.param_groups[0]["theta"] == pytest.approx(5.0, rel=1e-12)
    torch.testing.assert_close(w.detach(), 0.5 * w1)
    opt.step(closure)  # cap sqrt(1 + 5) * 0.5 > 0.5: the smoothness estimate decides again
    assert opt.param_groups[0]["eta"] == pytest.approx(0.5, rel=1e-12)


def test_the_second_closure_call_is_at_the_previous_weights():
    mats, vecs = _quad(n_batches=1)
    w = torch.nn.Parameter(torch.ones(5, dtype=torch.float64))
    opt = OASIS([w])
    log: list[torch.Tensor] = []
    iterates = [w.detach().clone()]
    for k in range(3):
        opt.step(_closure_for(opt, [w], mats, vecs, k, log=log))
        iterates.append(w.detach().clone())
    # step 0: one call at w0; step k >= 1: at w_k, then at w_{k-1}
    expected = [iterates[0], iterates[1], iterates[0], iterates[2], iterates[1]]
    assert len(log) == len(expected)
    for got, want in zip(log, expected):
        assert torch.equal(got, want)


def test_plain_backward_needs_create_graph_or_fd():
    mats, vecs = _quad()
    w = torch.nn.Parameter(torch.ones(5, dtype=torch.float64))
    opt = OASIS([w])
    with pytest.raises(RuntimeError, match="create_graph"):
        opt.step(_closure_for(opt, [w], mats, vecs, 0, create_graph=False))
    with pytest.raises(ValueError, match="closure"):
        opt.step()


def test_finite_differences_follow_the_exact_products():
    mats, vecs = _quad()
    out = []
    for hvp, cg in (("autograd", True), ("fd", False)):
        w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=torch.float64))
        opt = OASIS([w], hvp=hvp, fd_eps=1e-6)
        _run([w], opt, mats, vecs, 15, create_graph=cg)
        out.append(w.detach())
    torch.testing.assert_close(out[1], out[0], rtol=1e-6, atol=1e-8)


def test_create_graph_loss_keeps_the_value_and_builds_the_graph():
    model = torch.nn.Linear(3, 2).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    base = lambda m, xb, yb: torch.nn.functional.cross_entropy(m(xb), yb)  # noqa: E731
    value = create_graph_loss(base)(model, x, y)
    assert value.item() == pytest.approx(base(model, x, y).item())
    assert all(p.grad is not None and p.grad.requires_grad for p in model.parameters())
    value.backward()  # the shared loop's plain backward on the returned leaf touches no parameter
    g = torch.autograd.grad(base(model, x, y), list(model.parameters()))
    for p, want in zip(model.parameters(), g):
        torch.testing.assert_close(p.grad.detach(), want)
    for p in model.parameters():
        p.grad = None


def test_lr_scales_and_zero_lr_freezes_a_group():
    mats, vecs = _quad()
    w0 = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=torch.float64)
    a = torch.nn.Parameter(w0[:2].clone())
    b = torch.nn.Parameter(w0[2:].clone())
    opt = OASIS([{"params": [a], "lr": 0.0}, {"params": [b], "lr": 0.5}])
    _run([a, b], opt, mats, vecs, 1)
    assert torch.equal(a.detach(), w0[:2])
    w = torch.nn.Parameter(w0.clone())
    ref = OASIS([w])
    _run([w], ref, mats, vecs, 1)
    torch.testing.assert_close(b.detach() - w0[2:], 0.5 * (w.detach()[2:] - w0[2:]))


def test_resume_is_bit_exact_with_exact_products():
    mats, vecs = _quad()
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=torch.float64))
    opt = OASIS([w])
    _run([w], opt, mats, vecs, 4)
    saved_w, saved = w.detach().clone(), copy.deepcopy(opt.state_dict())
    for k in range(4, 9):
        opt.step(_closure_for(opt, [w], mats, vecs, k))
    w2 = torch.nn.Parameter(saved_w.clone())
    opt2 = OASIS([w2])
    opt2.load_state_dict(saved)
    for k in range(4, 9):
        opt2.step(_closure_for(opt2, [w2], mats, vecs, k))
    assert torch.equal(w.detach(), w2.detach())


def test_converges_on_logistic_regression_without_a_learning_rate():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 4, generator=g, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.1, 3.0], dtype=torch.float64)
    y = (x @ torch.tensor([1.0, -0.1, 5.0, 0.3], dtype=torch.float64) + 0.3 * torch.randn(200, generator=g, dtype=torch.float64) > 0).double()
    w = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = OASIS([w])

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w, y) + 1e-3 * (w * w).sum()
        loss.backward(create_graph=True)
        return loss

    first = float(closure().detach())
    for _ in range(200):
        opt.step(closure)
    # the optimum of this strongly convex problem, by Newton's method
    v = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    for _ in range(50):
        f = torch.nn.functional.binary_cross_entropy_with_logits(x @ v, y) + 1e-3 * (v * v).sum()
        gr = torch.autograd.grad(f, v, create_graph=True)[0]
        hs = torch.stack([torch.autograd.grad(gr[i], v, retain_graph=True)[0] for i in range(4)])
        v = (v - torch.linalg.solve(hs, gr)).detach().requires_grad_(True)
    f_star = float(torch.nn.functional.binary_cross_entropy_with_logits(x @ v, y) + 1e-3 * (v * v).sum())
    last = float(closure().detach())
    assert last - f_star < 1e-6 * first
    np.testing.assert_allclose(w.detach().numpy(), v.detach().numpy(), rtol=1e-2, atol=1e-3)


def test_follows_the_paper_with_negative_and_zero_curvature():
    """Hutchinson samples below zero (|D| is used) and a coordinate without curvature (truncated at alpha)."""
    a = torch.tensor([[1.0, 3.0, 0.0], [3.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)  # indefinite
    c = torch.tensor([0.5, -0.2, 1e-3], dtype=torch.float64)
    w0 = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    z0 = _rademacher([(3,)], 0)[0]
    assert float((z0 * (a @ z0))[:2].min()) < 0 or float((z0 * (a @ z0))[:2].max()) > 0
    for steps in (1, 2, 4):
        w = torch.nn.Parameter(w0.clone())
        opt = OASIS([w], alpha=1e-2)
        _run([w], opt, [a], [c], steps)
        ref = _reference([a], [c], w0, steps, [3], alpha=1e-2)
        torch.testing.assert_close(w.detach(), ref, rtol=1e-10, atol=1e-12)
    samples = [(z * (a @ z)) for k in range(4) for z in _rademacher([(3,)], k)]
    assert min(float(s[:2].min()) for s in samples) < 0, "the test needs a negative Hutchinson sample"
