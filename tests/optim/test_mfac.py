"""M-FAC (zoo.optim.mfac): the dynamic algorithm's inverse-Fisher products and the optimizer step.

No package of the authors exists (their code, github.com/IST-DASLab/M-FAC, is not on PyPI), so
the oracles are the definition: the explicit ``(lambda I + G^T G / m)^-1 x`` with the ``d x d``
matrix formed (float64), and the paper's row-by-row recursion for ``D`` and ``B``
(:func:`dynamic_ihvp_reference`, the authors' ``HInvFastUpMulti.setup``/``mul`` written out).
Tolerance: 1e-9 relative in float64 (the explicit solve's own error at damp 1e-5 is ~1e-11).
"""

from __future__ import annotations

import copy

import pytest
import torch

from zoo.optim.mfac import MFAC, dynamic_ihvp_reference, explicit_ihvp


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def _params(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(4, 3, generator=g, dtype=dtype)),
            torch.nn.Parameter(torch.randn(5, generator=g, dtype=dtype))]


def _flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def _feed(opt, params, grads):
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.clone()
    opt.step()


def _random_grads(params, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params] for _ in range(n)]


# ----------------------------------------------------------------------------- the IHVP
@pytest.mark.parametrize("damp", [1e-1, 1e-5])
def test_reference_recursion_equals_the_explicit_inverse(damp):
    g = torch.Generator().manual_seed(0)
    grads = torch.randn(7, 40, generator=g, dtype=torch.float64)
    x = torch.randn(40, generator=g, dtype=torch.float64)
    assert _rel(dynamic_ihvp_reference(grads, x, damp), explicit_ihvp(grads, x, damp)) < 1e-9


@pytest.mark.parametrize("damp", [1e-1, 1e-5])
def test_window_after_wrapping_gives_the_explicit_inverse_of_the_last_m_gradients(damp):
    """12 gradients through a window of 5: the product uses exactly the last 5 (ring buffer)."""
    params = _params()
    m = 5
    opt = MFAC(params, lr=0.0, ngrads=m, damp=damp)
    stream = _random_grads(params, 12)
    for grads in stream:
        _feed(opt, params, grads)
    last = torch.stack([_flat(gr) for gr in stream[-m:]])
    x = [torch.randn(p.shape, dtype=torch.float64) for p in params]
    ours = _flat(opt.inverse_fisher_product(x))
    assert _rel(ours, explicit_ihvp(last, _flat(x), damp)) < 1e-9
    assert _rel(ours, dynamic_ihvp_reference(last, _flat(x), damp)) < 1e-9


def test_before_the_window_fills_the_empty_rows_are_zero_gradients():
    """Three gradients in a window of 8: F = damp I + (1/8) sum of the three outer products."""
    params = _params()
    opt = MFAC(params, lr=0.0, ngrads=8, damp=1e-3)
    stream = _random_grads(params, 3)
    for grads in stream:
        _feed(opt, params, grads)
    G = torch.cat([torch.stack([_flat(gr) for gr in stream]), torch.zeros(5, 17, dtype=torch.float64)])
    x = [torch.randn(p.shape, dtype=torch.float64) for p in params]
    assert _rel(_flat(opt.inverse_fisher_product(x)), explicit_ihvp(G, _flat(x), 1e-3)) < 1e-9


def test_float32_window_is_close_to_the_float64_oracle():
    params = _params(torch.float32)
    opt = MFAC(params, lr=0.0, ngrads=4, damp=1e-2)
    stream = _random_grads(params, 6)
    for grads in stream:
        _feed(opt, params, grads)
    last = torch.stack([_flat(gr) for gr in stream[-4:]])
    x = [torch.randn(p.shape) for p in params]
    ours = opt.inverse_fisher_product(x)
    assert all(t.dtype == torch.float32 for t in ours)
    assert _rel(_flat(ours), explicit_ihvp(last, _flat(x), 1e-2)) < 1e-4


# ----------------------------------------------------------------------------- the step
def test_first_step_by_hand():
    """Window of one gradient: F^-1 g = g / (damp + ||g||^2 / m)."""
    w = torch.nn.Parameter(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64))
    g = torch.tensor([1.0, 2.0, -2.0], dtype=torch.float64)
    lr, m, damp = 0.5, 4, 1e-2
    opt = MFAC([w], lr=lr, ngrads=m, damp=damp)
    w0 = w.detach().clone()
    _feed(opt, [w], [g])
    expected = w0 - lr * g / (damp + g.dot(g) / m)
    assert torch.allclose(w.detach(), expected, rtol=1e-12, atol=0)


def test_steps_follow_the_explicit_inverse_with_weight_decay_and_momentum():
    """Each step: g = grad + wd w enters the window, u = F^-1 g, v = mu v + (1 - mu) u, w -= lr v."""
    params = _params()
    lr, m, damp, mu, wd = 0.1, 3, 1e-2, 0.7, 0.05
    opt = MFAC(params, lr=lr, ngrads=m, damp=damp, momentum=mu, weight_decay=wd)
    w = _flat([p.detach() for p in params]).clone()
    v = torch.zeros_like(w)
    window: list[torch.Tensor] = []
    for grads in _random_grads(params, 6):
        g = _flat(grads) + wd * w
        window = (window + [g])[-m:]
        G = torch.cat([torch.stack(window), torch.zeros(m - len(window), w.numel(), dtype=torch.float64)])
        u = explicit_ihvp(G, g, damp)
        v = mu * v + (1 - mu) * u
        w = w - lr * v
        _feed(opt, params, grads)
        assert _rel(_flat([p.detach() for p in params]), w) < 1e-9


def test_groups_take_their_own_lr_and_momentum_on_one_shared_fisher():
    a, b = _params()
    opt = MFAC([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.3, "momentum": 0.5}], ngrads=4, damp=1e-2)
    wa, wb = a.detach().clone(), b.detach().clone()
    vb = torch.zeros(b.numel(), dtype=torch.float64)
    window: list[torch.Tensor] = []
    for grads in _random_grads([a, b], 3):
        g = _flat(grads)
        window.append(g)
        G = torch.cat([torch.stack(window), torch.zeros(4 - len(window), g.numel(), dtype=torch.float64)])
        u = explicit_ihvp(G, g, 1e-2)
        wa = wa - 0.1 * u[:12].reshape(4, 3)
        vb = 0.5 * vb + 0.5 * u[12:]
        wb = wb - 0.3 * vb
        _feed(opt, [a, b], grads)
    assert _rel(a.detach(), wa) < 1e-9 and _rel(b.detach(), wb) < 1e-9


def test_a_parameter_without_gradient_contributes_zeros_and_stays():
    a, b = _params()
    opt = MFAC([a, b], lr=0.1, ngrads=3, damp=1e-2)
    stream = _random_grads([a, b], 5)
    stream[3][1] = None  # b has no gradient at step 4, which overwrites step 1's slot
    b_before = None
    window = []
    for i, grads in enumerate(stream):
        if i == 3:
            b_before = b.detach().clone()
        _feed(opt, [a, b], grads)
        if i == 3:
            assert torch.equal(b.detach(), b_before)
        window.append(_flat([g if g is not None else torch.zeros_like(p) for g, p in zip(grads, (a, b))]))
    G = torch.stack(window[-3:])
    x = [torch.randn(p.shape, dtype=torch.float64) for p in (a, b)]
    assert _rel(_flat(opt.inverse_fisher_product(x)), explicit_ihvp(G, _flat(x), 1e-2)) < 1e-9


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_resume_continues_the_window(dtype):
    params = _params(dtype)
    opt = MFAC(params, lr=0.1, ngrads=3, damp=1e-2, momentum=0.5)
    stream = _random_grads(params, 8)
    for grads in stream[:4]:
        _feed(opt, params, grads)
    saved_p = [p.detach().clone() for p in params]
    saved = copy.deepcopy(opt.state_dict())
    for grads in stream[4:]:
        _feed(opt, params, grads)
    params2 = [torch.nn.Parameter(t.clone()) for t in saved_p]
    opt2 = MFAC(params2, lr=0.1, ngrads=3, damp=1e-2, momentum=0.5)
    opt2.load_state_dict(saved)
    assert opt2.state[params2[0]]["dots"].dtype == torch.float64
    for grads in stream[4:]:
        _feed(opt2, params2, grads)
    assert all(torch.equal(p.detach(), q.detach()) for p, q in zip(params, params2))


def test_large_damping_is_sgd():
    """damp -> infinity: F -> damp I, so M-FAC at lr * damp is plain SGD at lr."""
    params = _params()
    sgd_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    damp = 1e8
    opt = MFAC(params, lr=0.1 * damp, ngrads=4, damp=damp)
    sgd = torch.optim.SGD(sgd_params, lr=0.1)
    for grads in _random_grads(params, 5):
        _feed(opt, params, grads)
        _feed(sgd, sgd_params, grads)
    assert all(_rel(p.detach(), q.detach()) < 1e-6 for p, q in zip(params, sgd_params))


def test_invalid_arguments_raise():
    w = [torch.nn.Parameter(torch.zeros(2))]
    for kw in ({"lr": -1.0}, {"momentum": 1.0}, {"weight_decay": -1.0}, {"ngrads": 0}, {"damp": 0.0}):
        with pytest.raises(ValueError):
            MFAC(w, **kw)
