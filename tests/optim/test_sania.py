"""SANIA AdaGrad-SQR / Adam-SQR: steps by hand, the authors' per-group algorithm, scale invariance.

There is no PyPI package; :func:`_authors_adagrad` / :func:`_authors_adam` restate, in NumPy, the
loop of the authors' ``SANIA/sania_adagrad_sqr.py`` and ``sania_adam_sqr.py`` (github.com/fxrshed/
SANIA, commit ce6662f / 9fb9980) for one parameter group, the differential oracle (float64,
lock-step, tolerance 1e-9 relative: the first steps move a coordinate by about 1/|g|, which amplifies rounding).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from zoo.optim.sania import SANIAAdaGradSQR, SANIAAdamSQR, sania_step_size


def _logreg(n=64, d=6, seed=0, scale=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = (x @ torch.randn(d, generator=g, dtype=torch.float64) > 0).to(torch.float64)
    if scale is not None:
        x = x * scale
    return x, y


def _loss(w, b, x, y):
    return torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y)


def _train(cls, x, y, w0, b0, steps=40, batch=16, **kw):
    w = torch.nn.Parameter(w0.clone())
    b = torch.nn.Parameter(b0.clone())
    opt = cls([w, b], **kw)
    for k in range(steps):
        i = slice((k * batch) % x.shape[0], (k * batch) % x.shape[0] + batch)

        def closure():
            opt.zero_grad()
            loss = _loss(w, b, x[i], y[i])
            loss.backward()
            return loss

        opt.step(closure)
    return w.detach(), b.detach(), opt


# ----------------------------------------------------------------------------- the authors' loop
def _authors_adagrad(f_grad, w, steps, eps):
    s = np.zeros_like(w)
    for _ in range(steps):
        f, g = f_grad(w)
        s = s + g * g
        d = g / np.maximum(eps, s)
        n = float((d * g).sum())
        t = 1.0
        if 2 * f <= n:
            det = 1 - 2 * f / n
            if det > 0:
                t = 1 - math.sqrt(det)
        w = w - t * d
    return w


def _authors_adam(f_grad, w, steps, eps, beta2):
    v = np.zeros_like(w)
    for k in range(1, steps + 1):
        f, g = f_grad(w)
        v = beta2 * v + (1 - beta2) * g * g
        d = g / np.maximum(eps, v / (1 - beta2**k))
        n = float((d * g).sum())
        t = 1.0
        if 2 * f <= n:
            det = 1 - 2 * f / n
            if det > 0:
                t = 1 - math.sqrt(det)
        w = w - t * d
    return w


def _np_problem():
    x, y = _logreg()

    def f_grad(w):
        wt = torch.tensor(w, requires_grad=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ wt, y)
        loss.backward()
        return float(loss.detach()), wt.grad.numpy().copy()

    return x, y, f_grad


@pytest.mark.parametrize("eps", [0.1, 1e-10])
@pytest.mark.parametrize("variant", ["adagrad", "adam"])
def test_matches_the_authors_loop_in_lock_step(variant, eps):
    x, y, f_grad = _np_problem()
    w0 = np.full(x.shape[1], 0.3)
    for steps in (1, 2, 15):
        if variant == "adagrad":
            ref = _authors_adagrad(f_grad, w0.copy(), steps, eps)
            opt_cls, kw = SANIAAdaGradSQR, {"eps": eps}
        else:
            ref = _authors_adam(f_grad, w0.copy(), steps, eps, 0.999)
            opt_cls, kw = SANIAAdamSQR, {"eps": eps, "beta2": 0.999}
        w = torch.nn.Parameter(torch.tensor(w0))
        opt = opt_cls([w], **kw)
        for _ in range(steps):
            def closure():
                opt.zero_grad()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w, y)
                loss.backward()
                return loss
            opt.step(closure)
        np.testing.assert_allclose(w.detach().numpy(), ref, rtol=1e-9, atol=1e-12)


def test_one_step_by_hand_both_branches():
    # f = 1, g = 1 at w = 2 for f = w^2/4: n = 1 < 2 f, so lambda = 1 (the model's minimiser): w -> 1
    w = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    opt = SANIAAdaGradSQR([w])
    opt.step(loss=_backward((w**2).sum() / 4))
    assert w.item() == pytest.approx(1.0, abs=1e-15)
    assert opt.param_groups[0]["step_size"] == 1.0
    # two coordinates: g = (0.5, 1), B = g^2, n = 2, f = 0.3 <= n/2: lambda = 1 - sqrt(1 - 0.3)
    w = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
    opt = SANIAAdaGradSQR([w], lr=0.5)
    loss = 0.5 * w[0] + 1.0 * w[1] - 1.2  # f = 0.3
    opt.step(loss=_backward(loss))
    lam = 1 - math.sqrt(1 - 2 * 0.3 / 2)
    expected = torch.tensor([1 - 0.5 * lam / 0.5, 1 - 0.5 * lam / 1.0], dtype=torch.float64)
    torch.testing.assert_close(w.detach(), expected, rtol=1e-14, atol=1e-14)
    assert opt.param_groups[0]["step_size"] == pytest.approx(lam)


def test_adam_sqr_second_step_by_hand():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = SANIAAdamSQR([w], beta2=0.9)
    g1 = torch.tensor([0.5, 1.0], dtype=torch.float64)
    g2 = torch.tensor([0.25, -2.0], dtype=torch.float64)
    opt.step(loss=_set_grad(w, g1, 0.3))
    w1 = w.detach().clone()
    opt.step(loss=_set_grad(w, g2, 0.1))
    v = 0.9 * 0.1 * g1**2 + 0.1 * g2**2
    b = v / (1 - 0.9**2)
    d = g2 / b
    lam = sania_step_size(0.1, float((d * g2).sum()))
    torch.testing.assert_close(w.detach(), w1 - lam * d, rtol=1e-14, atol=1e-14)


def test_step_size_rule():
    assert sania_step_size(0.0, 3.0) == 0.0  # at the target: no move
    assert sania_step_size(1.0, 1.0) == 1.0  # no root: the Newton step
    assert sania_step_size(0.25, 1.0) == pytest.approx(1 - math.sqrt(0.5))
    assert sania_step_size(0.5, 1.0) == pytest.approx(1.0)  # double root
    assert sania_step_size(1.0, 0.0) == 1.0


def _backward(loss):
    loss.backward()
    return loss.detach()


def _set_grad(w, g, f):
    w.grad = g.clone()
    return torch.tensor(f, dtype=torch.float64)


# ----------------------------------------------------------------------------- scale invariance
@pytest.mark.parametrize("cls", [SANIAAdaGradSQR, SANIAAdamSQR])
def test_scale_invariance_maps_iterates_exactly(cls):
    """Features times v, start w0 / v: every iterate is the unscaled one divided by v."""
    v = 10.0 ** torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.5, 2.0], dtype=torch.float64)
    x, y = _logreg()
    w0, b0 = torch.full((6,), 0.1, dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    w, b, _ = _train(cls, x, y, w0, b0, eps=1e-30)
    ws, bs, _ = _train(cls, x * v, y, w0 / v, b0, eps=1e-30)
    torch.testing.assert_close(ws * v, w, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(bs, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kw", [{"sqrt": True, "eps": 1e-30}, {"eps": 0.1}])
def test_the_root_and_a_binding_floor_break_invariance(kw):
    v = 10.0 ** torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.5, 2.0], dtype=torch.float64)
    x, y = _logreg()
    w0, b0 = torch.full((6,), 0.1, dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    w, _, _ = _train(SANIAAdaGradSQR, x, y, w0, b0, **kw)
    ws, _, _ = _train(SANIAAdaGradSQR, x * v, y, w0 / v, b0, **kw)
    assert (ws * v - w).abs().max() > 1e-3


def test_adam_is_not_scale_invariant():
    v = 10.0 ** torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.5, 2.0], dtype=torch.float64)
    x, y = _logreg()
    w0, b0 = torch.full((6,), 0.1, dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    w, _, _ = _train(torch.optim.Adam, x, y, w0, b0, lr=0.05)
    ws, _, _ = _train(torch.optim.Adam, x * v, y, w0 / v, b0, lr=0.05)
    assert (ws * v - w).abs().max() > 1e-2


# ----------------------------------------------------------------------------- groups, options
def test_the_norm_spans_all_groups():
    """Two groups with the same options follow the one-group trajectory (one model of the loss)."""
    x, y = _logreg()
    w0, b0 = torch.full((6,), 0.1, dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    w1, b1, _ = _train(SANIAAdaGradSQR, x, y, w0, b0)
    w = torch.nn.Parameter(w0.clone())
    b = torch.nn.Parameter(b0.clone())
    opt = SANIAAdaGradSQR([{"params": [w]}, {"params": [b]}])
    for k in range(40):
        i = slice((k * 16) % 64, (k * 16) % 64 + 16)
        def closure():
            opt.zero_grad()
            loss = _loss(w, b, x[i], y[i])
            loss.backward()
            return loss
        opt.step(closure)
    torch.testing.assert_close(w.detach(), w1, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(b.detach(), b1, rtol=1e-13, atol=1e-13)


def test_lr_multiplies_the_step():
    for lr in (1.0, 0.25):
        w = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
        opt = SANIAAdaGradSQR([w], lr=lr)
        opt.step(loss=_set_grad(w, torch.tensor([0.5, 1.0], dtype=torch.float64), 0.3))
        lam = 1 - math.sqrt(1 - 0.3)
        torch.testing.assert_close(w.detach(), 1 - lr * lam / torch.tensor([0.5, 1.0], dtype=torch.float64))


def test_needs_the_loss():
    w = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="loss"):
        SANIAAdaGradSQR([w]).step()
    with pytest.raises(ValueError):
        SANIAAdamSQR([w], beta2=1.0)
    with pytest.raises(ValueError):
        SANIAAdaGradSQR([w], eps=-1.0)


def test_resume_keeps_the_adam_step_count():
    x, y = _logreg()
    w0, b0 = torch.full((6,), 0.1, dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    _, _, opt = _train(SANIAAdamSQR, x, y, w0, b0, steps=5)
    sd = copy.deepcopy(opt.state_dict())
    assert all(s["step"] == 5 for s in sd["state"].values())


def test_the_step_size_uses_every_tensor():
    """The hand-computed two-coordinate step, with the coordinates in two tensors (and two groups)."""
    lam = 1 - math.sqrt(1 - 2 * 0.3 / 2)
    for groups in (False, True):
        a = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
        b = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
        opt = SANIAAdaGradSQR([{"params": [a]}, {"params": [b]}] if groups else [a, b])
        loss = 0.5 * a.sum() + 1.0 * b.sum() - 1.2
        opt.step(loss=_backward(loss))
        assert a.item() == pytest.approx(1 - lam / 0.5, rel=1e-14)
        assert b.item() == pytest.approx(1 - lam / 1.0, rel=1e-14)
