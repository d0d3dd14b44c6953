"""Tests for zoo.losses.squentropy: the paper's formulas on hand-computed values, options, masking."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.losses.squentropy import RescaledSquareLoss, SquentropyLoss, rescaled_square_loss, squentropy_loss

LN3 = math.log(3.0)


def _t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def test_squentropy_hand_values() -> None:
    """f = (ln 3, 0, 2), y = 0: CE = -log(3 / (3 + 1 + e^2)), square term (0^2 + 2^2) / 2 = 2."""
    x = torch.tensor([[LN3, 0.0, 2.0], [LN3, 0.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    z = 3 + 1 + math.exp(2)
    want = _t(-math.log(3 / z) + (0 + 4) / 2, -math.log(math.exp(2) / z) + (LN3**2 + 0) / 2)
    torch.testing.assert_close(squentropy_loss(x, y, reduction="none"), want)
    torch.testing.assert_close(squentropy_loss(x, y), want.mean())
    torch.testing.assert_close(SquentropyLoss(reduction="sum")(x, y), want.sum())


def test_squentropy_gradient_by_hand() -> None:
    """d/df_j = p_j - 1[j = y] + 2 f_j / (C - 1) for j != y: the square term pulls wrong logits to 0."""
    x = torch.tensor([[LN3, 0.0, 2.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0])
    (g,) = torch.autograd.grad(squentropy_loss(x, y), x)
    p = x.detach().softmax(1)
    want = p - F.one_hot(y, 3).double() + torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(g, want)


def test_squentropy_is_ce_plus_mean_square_of_wrong_logits_random() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (7,), generator=g)
    wrong = 1 - F.one_hot(y, 6).double()
    want = F.cross_entropy(x, y, reduction="none") + (wrong * x**2).sum(1) / 5
    torch.testing.assert_close(squentropy_loss(x, y, reduction="none"), want)


def test_squentropy_is_shift_sensitive_unlike_ce() -> None:
    """CE is shift invariant; the square term is not (it pins the wrong logits at 0)."""
    x = torch.tensor([[1.0, 0.5, -0.2]], dtype=torch.float64)
    y = torch.tensor([0])
    torch.testing.assert_close(F.cross_entropy(x + 3, y), F.cross_entropy(x, y))
    assert float(squentropy_loss(x + 3, y)) > float(squentropy_loss(x, y)) + 1.0


def test_rescaled_square_loss_hand_values() -> None:
    """f = (ln 3, 0, 2), y = 0: (k (ln 3 - M)^2 + 0 + 4) / 3; k = M = 1 is MSE on one-hot labels."""
    x = torch.tensor([[LN3, 0.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0])
    torch.testing.assert_close(rescaled_square_loss(x, y, k=1.0, M=1.0, reduction="none"), _t(((LN3 - 1) ** 2 + 4) / 3))
    torch.testing.assert_close(rescaled_square_loss(x, y, k=15.0, M=30.0, reduction="none"),
                               _t((15 * (LN3 - 30) ** 2 + 4) / 3))
    torch.testing.assert_close(RescaledSquareLoss(k=15.0, M=30.0, reduction="none")(x, y),
                               _t((15 * (LN3 - 30) ** 2 + 4) / 3))
    g = torch.Generator().manual_seed(1)
    xr = torch.randn(5, 4, generator=g, dtype=torch.float64)
    yr = torch.randint(0, 4, (5,), generator=g)
    torch.testing.assert_close(rescaled_square_loss(xr, yr), F.mse_loss(xr, F.one_hot(yr, 4).double()))
    assert "k=15.0, M=30.0" in repr(RescaledSquareLoss(k=15.0, M=30.0))


def test_weight_ignore_index_and_label_smoothing() -> None:
    x = torch.tensor([[LN3, 0.0, 2.0]] * 3, dtype=torch.float64)
    y = torch.tensor([0, 2, 7])
    per = squentropy_loss(x[:2], y[:2], reduction="none")
    w = _t(2.0, 1.0, 0.5)
    got = squentropy_loss(x, y, weight=w, ignore_index=7, reduction="none")
    torch.testing.assert_close(got, torch.cat([per * _t(2.0, 0.5), _t(0.0)]))
    torch.testing.assert_close(squentropy_loss(x, y, weight=w, ignore_index=7), (per * _t(2.0, 0.5)).sum() / 2.5)
    torch.testing.assert_close(SquentropyLoss(weight=w, ignore_index=7)(x, y), (per * _t(2.0, 0.5)).sum() / 2.5)
    # label smoothing acts on the cross-entropy term exactly as torch's
    s = 0.2
    want = F.cross_entropy(x[:2], y[:2], label_smoothing=s, reduction="none") + _t(2.0, LN3**2 / 2)
    torch.testing.assert_close(squentropy_loss(x[:2], y[:2], label_smoothing=s, reduction="none"), want)
    torch.testing.assert_close(SquentropyLoss(label_smoothing=s, reduction="none")(x[:2], y[:2]), want)


def test_masked_class_is_left_out_of_the_average() -> None:
    """A -inf logit is an absent class: the square term averages over the C' - 1 finite wrong logits."""
    x = torch.tensor([[LN3, 0.0, 2.0, float("-inf")]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0])
    got = squentropy_loss(x, y)
    want = squentropy_loss(x.detach()[:, :3], y)
    torch.testing.assert_close(got.detach(), want)
    (g,) = torch.autograd.grad(got, x)
    assert torch.isfinite(g).all() and g[0, 3] == 0
    torch.testing.assert_close(rescaled_square_loss(x.detach(), y), rescaled_square_loss(x.detach()[:, :3], y))


def test_rejects_probability_targets() -> None:
    x = torch.randn(2, 3)
    with pytest.raises(ValueError):
        squentropy_loss(x, x.softmax(1))
    with pytest.raises(ValueError):
        rescaled_square_loss(x, x.softmax(1))
