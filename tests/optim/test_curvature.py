"""The Lanczos lambda_max and the Hessian-vector product against an explicit Hessian on tiny models."""

from __future__ import annotations

import pytest
import torch

from zoo.optim.curvature import hvp, top_hessian_eigenvalue


@pytest.fixture
def tiny():
    """A 3-4-3 tanh MLP (35 parameters) on 16 points, its cross-entropy, and the explicit 35 x 35 Hessian."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (16,), generator=g)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]

    def of_flat(flat):
        weights = {n: c.view(s) for n, c, s in zip(names, torch.split(flat, sizes), shapes)}
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, weights, (x,)), y)

    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    h = torch.autograd.functional.hessian(of_flat, flat0)
    return model, (lambda: torch.nn.functional.cross_entropy(model(x), y)), h


def test_hvp_is_the_explicit_hessian_times_v(tiny):
    model, loss_fn, h = tiny
    v = torch.randn(h.shape[0], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.allclose(hvp(loss_fn, list(model.parameters()), v), h @ v, atol=1e-12, rtol=1e-10)


def test_lanczos_with_n_steps_is_the_exact_top_eigenvalue(tiny):
    model, loss_fn, h = tiny
    exact = float(torch.linalg.eigvalsh(h)[-1])
    got = top_hessian_eigenvalue(loss_fn, list(model.parameters()), iters=h.shape[0])
    assert got == pytest.approx(exact, rel=1e-8)


def test_twenty_lanczos_steps_already_find_it_and_never_overshoot(tiny):
    model, loss_fn, h = tiny
    exact = float(torch.linalg.eigvalsh(h)[-1])
    assert top_hessian_eigenvalue(loss_fn, list(model.parameters()), iters=20) == pytest.approx(exact, rel=1e-6)
    for k in (1, 2, 3, 5):  # a Ritz value is a Rayleigh quotient: never above lambda_max
        assert top_hessian_eigenvalue(loss_fn, list(model.parameters()), iters=k) <= exact + 1e-10


def test_a_quadratic_with_known_spectrum_and_an_invariant_krylov_space():
    # L(w) = 0.5 w^T A w with A = diag(5, 2, 2, 2, -1): three distinct eigenvalues, so Lanczos stops after 3 steps.
    a = torch.diag(torch.tensor([5.0, 2.0, 2.0, 2.0, -1.0], dtype=torch.float64))
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    assert top_hessian_eigenvalue(lambda: 0.5 * w @ a @ w, [w], iters=50) == pytest.approx(5.0, rel=1e-12)


def test_leaves_grads_alone_and_is_seeded(tiny):
    model, loss_fn, _ = tiny
    params = list(model.parameters())
    assert all(p.grad is None for p in params)
    a = top_hessian_eigenvalue(loss_fn, params, iters=4, seed=7)
    b = top_hessian_eigenvalue(loss_fn, params, iters=4, seed=7)
    assert a == b and all(p.grad is None for p in params)
    with pytest.raises(ValueError, match="requires grad"):
        top_hessian_eigenvalue(loss_fn, [torch.zeros(2)], iters=3)
