"""Exact deep-linear dynamics: closed forms against ODE solvers and against simulated networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad, solve_ivp

from zoo.theory.deep_linear import (
    DeepLinearNet,
    approximate_learning_time,
    decoupled_init,
    effective_initial_strength,
    end_to_end,
    first_crossing_time,
    learning_time,
    mode_strength,
    mode_strength_deep,
    mode_strengths,
    mode_velocity,
    random_orthogonal,
    teacher_correlation,
    whitened_inputs,
)

F64 = torch.float64



def _ode_solution(s: float, u0: float, depth: int, t: np.ndarray, tau: float = 1.0) -> np.ndarray:
    """Reference: scipy integrating the balanced mode ODE in log u (well scaled from u0 ~ 1e-6).

    The right-hand side is the paper's ``tau du/dt = D u^{2 - 2/D} (s - u)`` written out here, not
    the library's :func:`mode_velocity`, so the reference shares no code with what it checks.
    """

    def rhs(_t: float, z: np.ndarray) -> np.ndarray:
        u = math.exp(z[0])
        return np.array([depth * u ** (1.0 - 2.0 / depth) * (s - u) / tau])  # d ln u / dt

    sol = solve_ivp(rhs, (0.0, float(t[-1])), [math.log(u0)], t_eval=t, rtol=1e-11, atol=1e-12, method="DOP853")
    return np.exp(sol.y[0])


def _gradient_descent(weights: list[torch.Tensor], sigma31: torch.Tensor, lr: float, steps: int) -> list[torch.Tensor]:
    """Full-batch GD on 1/2 ||Sigma31 - W_D..W_1||_F^2 (whitened inputs), the product after each step."""
    ws = [w.clone().requires_grad_(True) for w in weights]
    products = [end_to_end(ws).detach()]
    for _ in range(steps):
        loss = 0.5 * (sigma31 - end_to_end(ws)).pow(2).sum()
        grads = torch.autograd.grad(loss, ws)
        with torch.no_grad():
            for w, g in zip(ws, grads):
                w -= lr * g
        products.append(end_to_end(ws).detach())
    return products


# --------------------------------------------------------------------------- closed forms


def test_mode_strength_solves_the_two_layer_ode() -> None:
    s, u0, tau = 2.5, 1e-5, 0.7
    t = np.linspace(0.0, 12.0, 60)
    ref = _ode_solution(s, u0, 2, t, tau)
    got = mode_strength(torch.tensor(t), s, u0, tau).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-12)
    assert got[0] == pytest.approx(u0)
    assert float(mode_strength(1e6, s, u0)) == pytest.approx(s)  # no overflow far out


def test_learning_time_inverts_the_sigmoid_and_matches_the_rule_of_thumb() -> None:
    s = torch.tensor([0.5, 1.0, 4.0], dtype=F64)
    u0, uf = 1e-4, 0.9 * s
    t = learning_time(s, u0, uf, tau=2.0)
    torch.testing.assert_close(mode_strength(t, s, u0, tau=2.0), uf)
    # (tau/s) ln(s/eps) is the leading behaviour of the exact time from eps to s - eps.
    eps = 1e-8
    ratio = learning_time(s, eps, s - eps) / approximate_learning_time(s, eps)
    torch.testing.assert_close(ratio, torch.ones(3, dtype=F64), rtol=1e-6, atol=0)
    # Stronger modes are learned faster.
    assert bool((t[1:] < t[:-1]).all())


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_deep_learning_time_matches_the_papers_integral(depth: int) -> None:
    s, u0, uf = 1.7, 2e-3, 1.2
    exact, _ = quad(lambda u: 1.0 / (depth * u ** (2 - 2 / depth) * (s - u)), u0, uf, epsabs=0, epsrel=1e-12, limit=200)
    assert float(learning_time(s, u0, uf, depth=depth)) == pytest.approx(exact, rel=1e-8)


def test_deep_learning_time_quadrature_reproduces_two_layer_closed_form() -> None:
    # Depth 2 has its own closed form; the generic quadrature must agree with it.
    import zoo.theory.deep_linear as dl

    s, u0, uf = torch.tensor([0.5, 3.0], dtype=F64), 1e-6, torch.tensor([0.25, 2.9], dtype=F64)
    closed = learning_time(s, u0, uf, depth=2)
    w0, wf = dl._logit_strength(torch.full_like(s, u0), s), dl._logit_strength(uf, s)
    # dt/dw is constant for depth 2, so the integral is (wf - w0) tau / (2 s).
    torch.testing.assert_close(dl._dt_dw(w0, s, 2, 1.0) * (wf - w0), closed)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_mode_strength_deep_matches_an_ode_solver(depth: int) -> None:
    s = [3.0, 1.0, 0.4]
    u0 = 1e-3
    t = np.concatenate([np.linspace(0.0, 60.0, 41), [1e4]])
    got = mode_strength_deep(torch.tensor(t), torch.tensor(s), u0, depth).numpy()
    assert got.shape == (len(t), 3)
    for i, si in enumerate(s):
        np.testing.assert_allclose(got[:-1, i], _ode_solution(si, u0, depth, t[:-1]), rtol=2e-6, atol=1e-9)
    np.testing.assert_allclose(got[-1], s)  # past the table: learned


def test_mode_strength_deep_is_consistent_with_learning_time() -> None:
    s = torch.tensor([4.0, 1.0, 0.5], dtype=F64)
    t_half = learning_time(s, 1e-3, 0.5 * s, depth=3)
    u = mode_strength_deep(t_half, s, 1e-3, depth=3)  # row j: time of mode j
    torch.testing.assert_close(torch.diagonal(u), 0.5 * s, rtol=1e-6, atol=0)


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError):
        mode_strength(1.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        learning_time(1.0, 0.5, 1.5)
    with pytest.raises(ValueError):
        mode_velocity(0.1, 1.0, depth=0)
    with pytest.raises(ValueError):
        teacher_correlation([1.0, 2.0, 3.0], 2, 5)


# --------------------------------------------------------------------------- problem construction


def test_teacher_and_whitened_inputs() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.tensor([3.0, 1.5, 0.2], dtype=F64)
    teacher = teacher_correlation(s, 6, 5, g)
    torch.testing.assert_close(torch.linalg.svdvals(teacher.sigma31)[:3], s)
    assert torch.linalg.matrix_rank(teacher.sigma31) == 3
    torch.testing.assert_close(teacher.U.T @ teacher.U, torch.eye(3, dtype=F64))
    torch.testing.assert_close(teacher.V.T @ teacher.V, torch.eye(3, dtype=F64))
    torch.testing.assert_close(mode_strengths(teacher.sigma31, teacher.U, teacher.V), s)
    x = whitened_inputs(12, 5, g)
    torch.testing.assert_close(x.T @ x / 12, torch.eye(5, dtype=F64))
    with pytest.raises(ValueError):
        whitened_inputs(4, 5, g)


def test_random_orthogonal_is_unbiased_in_sign() -> None:
    g = torch.Generator().manual_seed(0)
    first = torch.stack([random_orthogonal(3, generator=g)[0, 0] for _ in range(200)])
    # Householder QR alone fixes the sign of R's diagonal, hence of Q's first row: mean ~ -0.5.
    assert abs(float(first.mean())) < 0.1


# --------------------------------------------------------------------------- simulated networks


@pytest.mark.parametrize("hidden", [[6], [6, 5]])
def test_decoupled_init_gradient_descent_follows_the_exact_solution(hidden: list[int]) -> None:
    g = torch.Generator().manual_seed(1)
    teacher = teacher_correlation([2.0, 1.0], 4, 3, g)
    depth, u0, lr = len(hidden) + 1, 1e-3, 5e-3
    weights = decoupled_init(teacher.U, teacher.V, hidden, u0, g)
    assert [tuple(w.shape) for w in weights] == list(zip(hidden + [4], [3] + hidden))
    torch.testing.assert_close(end_to_end(weights), teacher.U @ torch.diag(torch.full((2,), u0, dtype=F64)) @ teacher.V.T)
    steps = 1600 if depth == 2 else 2800
    products = _gradient_descent(weights, teacher.sigma31, lr, steps)
    sim = torch.stack([mode_strengths(p, teacher.U, teacher.V) for p in products])
    theory = mode_strength_deep(torch.arange(steps + 1, dtype=F64) * lr, teacher.s, u0, depth)
    # Small steps approximate the flow: within a few lr * s of the strength scale.
    assert float((sim - theory).abs().max()) < 0.05
    assert float(sim[-1, 0]) == pytest.approx(2.0, rel=1e-3)
    # The map never leaves the span of the teacher's modes (the solution stays decoupled).
    off = products[-1] - teacher.U @ torch.diag(sim[-1]) @ teacher.V.T
    assert float(off.abs().max()) < 1e-10


def test_effective_initial_strength_of_decoupled_and_random_weights() -> None:
    g = torch.Generator().manual_seed(2)
    teacher = teacher_correlation([1.5, 0.6], 5, 5, g)
    w1, w2 = decoupled_init(teacher.U, teacher.V, [8], torch.tensor([1e-4, 3e-4]), g)
    torch.testing.assert_close(effective_initial_strength(w1, w2, teacher.U, teacher.V), torch.tensor([1e-4, 3e-4], dtype=F64))
    # Random small weights: the sigmoid started at |c|^2 predicts the half-learning time of the
    # simulation; the raw initial overlap u^T W2 W1 v (tiny, of either sign) could not.
    w1 = 1e-3 * torch.randn(40, 5, generator=g, dtype=F64)
    w2 = 1e-3 * torch.randn(5, 40, generator=g, dtype=F64)
    u0 = effective_initial_strength(w1, w2, teacher.U, teacher.V)
    lr, steps = 0.02, 700
    products = _gradient_descent([w1, w2], teacher.sigma31, lr, steps)
    sim = torch.stack([mode_strengths(p, teacher.U, teacher.V) for p in products])
    t = torch.arange(steps + 1, dtype=F64) * lr
    t_sim = first_crossing_time(t, sim, 0.5 * teacher.s)
    t_theory = learning_time(teacher.s, u0, 0.5 * teacher.s)
    torch.testing.assert_close(t_sim, t_theory, rtol=0.03, atol=0)


def test_first_crossing_time_interpolates_and_flags_never() -> None:
    t = torch.linspace(0.0, 1.0, 11, dtype=F64)
    u = torch.stack([t * 2.0, t * 0.5, torch.ones_like(t)], 1)
    got = first_crossing_time(t, u, torch.tensor([1.3, 0.9, 0.5], dtype=F64))
    assert float(got[0]) == pytest.approx(0.65)
    assert math.isnan(float(got[1]))
    assert float(got[2]) == 0.0


def test_deep_linear_net_copies_are_independent_networks() -> None:
    g = torch.Generator().manual_seed(3)
    net = DeepLinearNet([4, 6, 3], copies=2, init_std=0.5, generator=g, dtype=F64)
    x = torch.randn(7, 2, 4, generator=g, dtype=F64)
    out = net(x)
    for c in range(2):
        torch.testing.assert_close(out[:, c], x[:, c] @ net.end_to_end()[c].T)
    torch.testing.assert_close(net(x[0]), out[0])  # one example, no sample axis
    # A loss summed over copies gives copy 0 the gradient of its own loss alone.
    y = torch.randn(7, 2, 3, generator=g, dtype=F64)
    (net(x) - y).pow(2).sum().backward()
    g_both = [w.grad[0].clone() for w in net.weights]
    net.zero_grad()
    (net(x)[:, 0] - y[:, 0]).pow(2).sum().backward()
    for a, w in zip(g_both, net.weights):
        torch.testing.assert_close(a, w.grad[0])
    with pytest.raises(ValueError):
        net.load_weights([torch.zeros(2, 6, 4)])


# --------------------------------------------------------------------------- hand-derived values


def test_mode_velocity_hand_values() -> None:
    """tau du/dt = D u^{2 - 2/D} (s - u): D = 3, u = 1/8, s = 1 gives 3 (1/16)(7/8) = 21/128."""
    assert float(mode_velocity(1 / 8, 1.0, depth=3)) == pytest.approx(21 / 128, rel=1e-14)
    assert float(mode_velocity(1 / 8, 1.0, depth=3, tau=0.5)) == pytest.approx(21 / 64, rel=1e-14)
    assert float(mode_velocity(0.25, 2.0, depth=2)) == pytest.approx(2 * 0.25 * 1.75, rel=1e-14)  # 2u(s - u)
    assert float(mode_velocity(0.25, 2.0, depth=1)) == pytest.approx(1.75, rel=1e-14)  # shallow: s - u
    assert float(mode_velocity(1 / 16, 1.0, depth=4)) == pytest.approx(4 * (1 / 16) ** 1.5 * 15 / 16, rel=1e-14)


def test_two_layer_sigmoid_hand_values() -> None:
    """u = s / (1 + (s/u0 - 1) e^{-2st/tau}): s = 1, u0 = 1/2 reaches 3/4 when e^{2t/tau} = 3."""
    assert float(mode_strength(math.log(3.0) / 2, 1.0, 0.5)) == pytest.approx(0.75, rel=1e-14)
    assert float(mode_strength(math.log(3.0), 1.0, 0.5, tau=2.0)) == pytest.approx(0.75, rel=1e-14)
    # s = 2, u0 = 1: u = 2 / (1 + e^{-4t}), 3/2 at t = ln(3)/4. A stronger mode is twice as fast.
    assert float(mode_strength(math.log(3.0) / 4, 2.0, 1.0)) == pytest.approx(1.5, rel=1e-14)
    # t(u0 -> uf) = tau/(2s) ln[uf (s - u0) / (u0 (s - uf))]: s = 2, 1/2 -> 3/2 is ln(9)/4.
    assert float(learning_time(2.0, 0.5, 1.5)) == pytest.approx(math.log(3.0) / 2, rel=1e-14)
    assert float(learning_time(2.0, 0.5, 1.5, tau=3.0)) == pytest.approx(1.5 * math.log(3.0), rel=1e-14)
    # The rule of thumb (tau/s) ln(s/eps), by hand.
    assert float(approximate_learning_time(2.0, 0.02, tau=3.0)) == pytest.approx(1.5 * math.log(100.0), rel=1e-14)


def test_one_layer_closed_form_through_the_generic_path() -> None:
    """D = 1: tau du/dt = s - u, so u = s - (s - u0) e^{-t/tau} and t(u0 -> uf) = tau ln((s - u0)/(s - uf)).

    Depth 1 runs the same quadrature and table inversion as deeper nets, with a closed form to meet.
    """
    s, u0, uf, tau = torch.tensor([0.5, 2.0], dtype=F64), 1e-3, torch.tensor([0.4, 1.9], dtype=F64), 0.7
    exact = tau * torch.log((s - u0) / (s - uf))
    torch.testing.assert_close(learning_time(s, u0, uf, tau=tau, depth=1), exact, rtol=1e-9, atol=0)
    t = torch.linspace(0.0, 8.0, 33, dtype=F64)
    got = mode_strength_deep(t, s, u0, depth=1, tau=tau)
    want = s - (s - u0) * torch.exp(-t[:, None] / tau)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-12)


def _rk4(s: np.ndarray, u0: float, depth: int, tau: float, t_end: float, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Classical fourth-order Runge-Kutta on tau du/dt = D u^{2-2/D} (s - u), written out here."""

    def f(u: np.ndarray) -> np.ndarray:
        return depth * u ** (2.0 - 2.0 / depth) * (s - u) / tau

    n = int(round(t_end / dt))
    u = np.full_like(s, u0)
    out = [u.copy()]
    for _ in range(n):
        k1 = f(u)
        k2 = f(u + 0.5 * dt * k1)
        k3 = f(u + 0.5 * dt * k2)
        k4 = f(u + dt * k3)
        u = u + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(u.copy())
    return np.arange(n + 1) * dt, np.stack(out)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_mode_strength_deep_matches_a_hand_written_rk4(depth: int) -> None:
    """The depth-D solution (its tau and its depth dependence) against a small-step integrator."""
    s, u0, tau = np.array([2.5, 1.0, 0.6]), 1e-2, 1.7
    t, ref = _rk4(s, u0, depth, tau, t_end=30.0, dt=5e-3)
    got = mode_strength_deep(torch.tensor(t[::20]), torch.tensor(s), u0, depth, tau=tau).numpy()
    np.testing.assert_allclose(got, ref[::20], rtol=1e-6, atol=1e-9)
    # Every mode is learned by the end, and the stronger ones first.
    assert np.allclose(ref[-1], s, rtol=1e-3)
    half = [t[np.argmax(ref[:, i] >= s[i] / 2)] for i in range(3)]
    assert half[0] < half[1] < half[2]


def test_mode_strengths_keep_their_sign_and_end_to_end_order() -> None:
    """diag(U^T W V) by hand, a negative entry included; W_2 W_1 is not W_1 W_2."""
    eye = torch.eye(2, dtype=F64)
    w = torch.tensor([[2.0, 5.0], [7.0, -3.0]], dtype=F64)
    torch.testing.assert_close(mode_strengths(w, eye, eye), torch.tensor([2.0, -3.0], dtype=F64))
    # A 45-degree rotation of the output basis mixes the columns: u_1 = (1, 1)/sqrt 2.
    r = torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=F64) / math.sqrt(2.0)
    torch.testing.assert_close(mode_strengths(w, r, eye), torch.tensor([9.0, -8.0], dtype=F64) / math.sqrt(2.0))
    w1 = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=F64)
    w2 = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=F64)
    torch.testing.assert_close(end_to_end([w1, w2]), w1)  # W2 @ W1 = W1 here, W1 @ W2 = 0
    torch.testing.assert_close(end_to_end([w2, w1]), torch.zeros(2, 2, dtype=F64))
