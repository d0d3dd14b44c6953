"""Saddle-free Newton (zoo.optim.saddle_free_newton): the step against the explicit |H| on small problems.

No package implements the paper's Krylov saddle-free Newton, so the oracles are explicit Hessians
(float64, ``torch.autograd.functional.hessian``) and their eigendecompositions: with a full
Krylov space the step is ``-(|H| + lambda I)^-1 g``; with ``k < d`` it is the Rayleigh-Ritz step in
the Krylov space ``span{g, Hg, ..., H^(k-1) g}`` built here by QR. Tolerances: 1e-9 relative with
exact Hessian-vector products; 1e-6 for the central finite differences (float64).
"""

from __future__ import annotations

import pytest
import torch

from zoo.optim.saddle_free_newton import SaddleFreeNewton, abs_eig_solve


def _quartic(seed=0, d=6):
    """A smooth non-convex function with an indefinite Hessian at its start point, and that point."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    h = (a + a.T) / 2  # indefinite
    c = torch.randn(d, generator=g, dtype=torch.float64)
    x0 = torch.randn(d, generator=g, dtype=torch.float64)

    def f(x):
        return 0.5 * x @ h @ x + c @ x + 0.05 * (x**4).sum() + 0.1 * torch.sin(x).sum()

    return f, x0


def _closure(opt, f, x, create_graph=True):
    def closure():
        opt.zero_grad()
        loss = f(x)
        loss.backward(create_graph=create_graph)
        return loss

    return closure


def _grad_hess(f, x0):
    x = x0.clone().requires_grad_(True)
    g = torch.autograd.grad(f(x), x)[0]
    return g.detach(), torch.autograd.functional.hessian(f, x0)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("absolute", [True, False])
def test_full_krylov_space_gives_the_explicit_step(absolute):
    f, x0 = _quartic()
    g, h = _grad_hess(f, x0)
    lam = 0.3
    x = torch.nn.Parameter(x0.clone())
    opt = SaddleFreeNewton([x], krylov_dim=6, dampings=(lam,), absolute=absolute)
    opt.step(_closure(opt, f, x))
    mu, u = torch.linalg.eigh(h)
    scale = (mu.abs() if absolute else mu) + lam
    expected = x0 - u @ ((u.T @ g) / scale)
    assert _rel(x.detach(), expected) < 1e-9
    assert opt.last_hvps == 6
    assert torch.allclose(opt.last_ritz_values, mu, atol=1e-8)


def test_partial_krylov_space_is_the_rayleigh_ritz_step():
    f, x0 = _quartic(seed=1, d=8)
    g, h = _grad_hess(f, x0)
    k, lam = 3, 0.2
    krylov = torch.stack([torch.linalg.matrix_power(h, i) @ g for i in range(k)], 1)
    v, _ = torch.linalg.qr(krylov)  # d x k, orthonormal columns spanning {g, Hg, H^2 g}
    t = v.T @ h @ v
    expected = x0 - v @ abs_eig_solve(t, v.T @ g, lam)
    x = torch.nn.Parameter(x0.clone())
    opt = SaddleFreeNewton([x], krylov_dim=k, dampings=(lam,))
    opt.step(_closure(opt, f, x))
    assert _rel(x.detach(), expected) < 1e-9


def test_finite_differences_match_exact_products():
    f, x0 = _quartic(seed=2)
    xs = []
    for create_graph in (True, False):
        x = torch.nn.Parameter(x0.clone())
        opt = SaddleFreeNewton([x], krylov_dim=4, dampings=(0.1,))
        opt.step(_closure(opt, f, x, create_graph=create_graph))
        xs.append(x.detach().clone())
    assert _rel(xs[1], xs[0]) < 1e-6


def test_finite_differences_restore_the_point_and_leave_the_starting_gradient():
    f, x0 = _quartic(seed=3)
    g, _ = _grad_hess(f, x0)
    x = torch.nn.Parameter(x0.clone())
    opt = SaddleFreeNewton([x], lr=0.0, krylov_dim=4, dampings=(0.1, 1.0), hvp="fd")
    opt.step(_closure(opt, f, x, create_graph=False))
    assert torch.equal(x.detach(), x0)  # lr 0: every probe (finite differences, line search) undone
    assert torch.allclose(x.grad, g, rtol=1e-12, atol=0)


def test_line_search_takes_the_damping_with_the_lowest_loss():
    f, x0 = _quartic(seed=4)
    g, h = _grad_hess(f, x0)
    dampings = (1e-3, 1e-1, 1.0, 10.0)
    mu, u = torch.linalg.eigh(h)
    cands = [x0 - u @ ((u.T @ g) / (mu.abs() + lam)) for lam in dampings]
    losses = [float(f(c)) for c in cands]
    best = min(range(len(dampings)), key=lambda i: losses[i])
    x = torch.nn.Parameter(x0.clone())
    opt = SaddleFreeNewton([x], krylov_dim=6, dampings=dampings)
    opt.step(_closure(opt, f, x))
    assert opt.last_damping == dampings[best]
    assert _rel(x.detach(), cands[best]) < 1e-9


def test_inner_steps_reuse_the_subspace_with_new_gradients():
    f, x0 = _quartic(seed=5, d=8)
    g, h = _grad_hess(f, x0)
    k, lam = 3, 0.5
    krylov = torch.stack([torch.linalg.matrix_power(h, i) @ g for i in range(k)], 1)
    v, _ = torch.linalg.qr(krylov)
    t = v.T @ h @ v
    x1 = x0 - v @ abs_eig_solve(t, v.T @ g, lam)
    g1, _ = _grad_hess(f, x1)
    x2 = x1 - v @ abs_eig_solve(t, v.T @ g1, lam)  # same V and |T|, the gradient at x1
    x = torch.nn.Parameter(x0.clone())
    opt = SaddleFreeNewton([x], krylov_dim=k, dampings=(lam,), inner_steps=2)
    opt.step(_closure(opt, f, x))
    assert _rel(x.detach(), x2) < 1e-9


def test_escapes_a_saddle_where_newton_is_attracted():
    """f = (x^2 - y^2) / 2 from (1, 1e-3): |H| doubles y (away); H sends y to 0 (the saddle)."""
    out = {}
    for absolute in (True, False):
        w = torch.nn.Parameter(torch.tensor([1.0, 1e-3], dtype=torch.float64))
        opt = SaddleFreeNewton([w], krylov_dim=2, dampings=(1e-9,), absolute=absolute)
        opt.step(_closure(opt, lambda v: 0.5 * v[0] ** 2 - 0.5 * v[1] ** 2, w))
        out[absolute] = w.detach()
    assert torch.allclose(out[True], torch.tensor([0.0, 2e-3], dtype=torch.float64), atol=1e-9)
    assert torch.allclose(out[False], torch.tensor([0.0, 0.0], dtype=torch.float64), atol=1e-9)


def test_groups_scale_the_step_by_their_lr():
    f, x0 = _quartic(seed=6)
    ref = torch.nn.Parameter(x0.clone())
    opt = SaddleFreeNewton([ref], krylov_dim=6, dampings=(0.5,))
    opt.step(_closure(opt, f, ref))
    step = ref.detach() - x0
    a = torch.nn.Parameter(x0[:3].clone())
    b = torch.nn.Parameter(x0[3:].clone())
    opt2 = SaddleFreeNewton([{"params": [a], "lr": 0.5}, {"params": [b], "lr": 2.0}], krylov_dim=6, dampings=(0.5,))
    opt2.step(_closure(opt2, lambda _: f(torch.cat([a, b])), a))
    assert torch.allclose(a.detach(), x0[:3] + 0.5 * step[:3], rtol=1e-9, atol=1e-12)
    assert torch.allclose(b.detach(), x0[3:] + 2.0 * step[3:], rtol=1e-9, atol=1e-12)


def test_needs_a_closure_and_a_graph_for_exact_products():
    f, x0 = _quartic()
    x = torch.nn.Parameter(x0.clone())
    opt = SaddleFreeNewton([x], hvp="exact")
    with pytest.raises(ValueError, match="closure"):
        opt.step()
    with pytest.raises(RuntimeError, match="create_graph"):
        opt.step(_closure(opt, f, x, create_graph=False))


def test_invalid_arguments_raise():
    w = [torch.nn.Parameter(torch.zeros(2))]
    for kw in ({"lr": -1.0}, {"krylov_dim": 0}, {"dampings": ()}, {"dampings": (0.0,)}, {"inner_steps": 0},
               {"hvp": "r-op"}, {"fd_eps": 0.0}):
        with pytest.raises(ValueError):
            SaddleFreeNewton(w, **kw)
    SaddleFreeNewton(w, dampings=(0.0,), absolute=False)  # damped Newton may run undamped


@pytest.mark.parametrize("create_graph", [True, False])
def test_closure_calls_exact_products_or_finite_differences(create_graph):
    """Exact (create_graph): 1 closure call + the line search; otherwise 2 more per product."""
    f, x0 = _quartic(seed=7)
    x = torch.nn.Parameter(x0.clone())
    opt = SaddleFreeNewton([x], krylov_dim=4, dampings=(0.1, 1.0, 10.0))
    calls = 0
    inner = _closure(opt, f, x, create_graph=create_graph)

    def closure():
        nonlocal calls
        calls += 1
        return inner()

    opt.step(closure)
    assert opt.last_hvps == 4
    assert calls == 1 + 3 + (0 if create_graph else 2 * 4)


def test_the_gradient_left_after_a_step_is_the_starting_gradient():
    f, x0 = _quartic(seed=8)
    g, _ = _grad_hess(f, x0)
    x = torch.nn.Parameter(x0.clone())
    opt = SaddleFreeNewton([x], krylov_dim=4, dampings=(0.1, 1.0))
    opt.step(_closure(opt, f, x))
    assert not torch.equal(x.detach(), x0)
    assert not x.grad.requires_grad and torch.allclose(x.grad, g, rtol=1e-12, atol=0)
