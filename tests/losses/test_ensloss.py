"""EnsLoss (Dai 2025): the calibrated derivative draw, the gradient it gives, the options."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.losses.ensloss import DELTA, EnsLoss, calibrated_derivatives, ensloss, inverse_box_cox


def test_inverse_box_cox() -> None:
    e = torch.tensor([-2.0, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(inverse_box_cox(e, 0.0), e.exp())
    # lam = 1/2: (1 + e/2)^2 -> 0, 1, 2.25
    torch.testing.assert_close(inverse_box_cox(e, 0.5), torch.tensor([0.0, 1.0, 2.25], dtype=torch.float64))
    # lam -> 0 recovers exp
    torch.testing.assert_close(inverse_box_cox(e, 1e-7), e.exp(), rtol=1e-5, atol=1e-6)


def test_derivatives_are_the_sorted_clipped_draws_assigned_by_rank() -> None:
    """The author's recipe by hand: sort(-exp(e)), clip at -1, smallest margin gets the smallest."""
    s = torch.tensor([0.3, -1.0, 0.9, 0.0, -0.2], dtype=torch.float64)
    g = calibrated_derivatives(s, generator=torch.Generator().manual_seed(5))
    e = torch.randn(5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    draws = (-e.exp()).sort().values.clamp_min(-1.0)
    order = s.argsort()
    torch.testing.assert_close(g[order], draws)
    # calibrated: every derivative <= 0, non-decreasing in the margin (convex loss), >= -1
    assert (g <= 0).all() and (g >= -1).all()
    assert (g[order].diff() >= 0).all()


def test_tail_beyond_margin_one_is_divided_by_the_margin() -> None:
    s = torch.tensor([-0.5, 0.5, 2.0, 4.0], dtype=torch.float64)
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    g = calibrated_derivatives(s, generator=gen())
    e = torch.randn(4, generator=gen(), dtype=torch.float64)
    draws = (-e.exp()).sort().values.clamp_min(-1.0)
    torch.testing.assert_close(g, draws / torch.tensor([1.0, 1.0, 2.0, 4.0], dtype=torch.float64))


def test_gradient_is_the_drawn_derivative() -> None:
    """d loss / d z_i = y_i (g_i - DELTA) / n: the doubly stochastic gradient of the paper."""
    z = torch.tensor([0.4, -1.3, 2.5, 0.1, 1.7, -0.6], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1, 1, 1, 0, 0, 0])
    y = 2.0 * t.double() - 1.0
    (grad,) = torch.autograd.grad(ensloss(z, t, seed=3), z)
    g = calibrated_derivatives(y * z.detach(), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(grad, y * (g - DELTA) / 6)
    # a correctly classified example pushes its score up, a wrong one too, never the other way
    assert (grad * y < 0).all()


def test_value_integrates_the_derivative() -> None:
    """Per element: (g - d) s up to margin 1, g_core (1 + log s) - d s beyond."""
    z = torch.tensor([0.5, 3.0], dtype=torch.float64)
    t = torch.tensor([1, 1])
    per = ensloss(z, t, seed=0, reduction="none")
    gen = torch.Generator().manual_seed(0)
    draws = (-torch.randn(2, generator=gen, dtype=torch.float64).exp()).sort().values.clamp_min(-1.0)
    want = torch.stack([(draws[0] - DELTA) * 0.5, draws[1] * (1 + math.log(3.0)) - DELTA * 3.0])
    torch.testing.assert_close(per, want)


def test_fresh_draw_per_call_and_reproducible_with_a_seed() -> None:
    z = torch.randn(32, dtype=torch.float64)
    t = (torch.rand(32) > 0.5).long()
    m = EnsLoss(seed=0)
    a, b = m(z, t), m(z, t)
    assert not torch.equal(a, b)  # a new loss every mini-batch
    torch.testing.assert_close(a, ensloss(z, t, seed=0))  # the first call: the seed's draw
    frozen = EnsLoss(seed=0, resample=False)
    assert torch.equal(frozen(z, t), frozen(z, t))
    torch.manual_seed(7)
    c = ensloss(z, t)
    torch.manual_seed(7)
    assert torch.equal(c, ensloss(z, t))  # the global generator when none is given
    with pytest.raises(ValueError):
        EnsLoss(resample=False)


def test_lam_changes_the_draw() -> None:
    z = torch.randn(16, dtype=torch.float64, requires_grad=True)
    t = (torch.rand(16) > 0.5).long()
    g0 = torch.autograd.grad(ensloss(z, t, lam=0.0, seed=2), z)[0]
    g1 = torch.autograd.grad(ensloss(z, t, lam=0.5, seed=2), z)[0]
    assert not torch.allclose(g0, g1)


def test_reductions_ignore_index_and_shapes() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 3, generator=g, dtype=torch.float64)
    t = torch.randint(0, 2, (4, 3), generator=g)
    none = ensloss(z, t, seed=1, reduction="none")
    assert none.shape == z.shape
    torch.testing.assert_close(ensloss(z, t, seed=1, reduction="sum"), none.sum())
    torch.testing.assert_close(ensloss(z, t, seed=1), none.mean())
    t2 = t.clone()
    t2[0] = -100
    keep = t2 != -100
    torch.testing.assert_close(ensloss(z, t2, seed=1), ensloss(z[keep], t[keep], seed=1))
    assert (ensloss(z, t2, seed=1, reduction="none")[0] == 0).all()
    with pytest.raises(ValueError):
        ensloss(z, t, reduction="avg")
    with pytest.raises(ValueError):
        ensloss(z, t[:, :2])


def test_function_and_module_agree() -> None:
    z = torch.randn(10, dtype=torch.float64)
    t = (torch.rand(10) > 0.5).long()
    torch.testing.assert_close(EnsLoss(lam=0.3, seed=4, reduction="sum")(z, t), ensloss(z, t, 0.3, seed=4, reduction="sum"))
    assert "lam=0.3" in repr(EnsLoss(lam=0.3))
