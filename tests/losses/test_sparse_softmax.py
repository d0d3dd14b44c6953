"""Tests for zoo.losses.sparse_softmax: the paper's formulas by hand, k = C is the softmax, gradients, options."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.losses.sparse_softmax import SparseSoftmaxCrossEntropyLoss, sparse_softmax, sparse_softmax_cross_entropy

LN3 = math.log(3.0)


def _t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def test_sparse_softmax_by_hand() -> None:
    """s = (ln 3, 0, -5, ln 3 + ln 2): k = 2 keeps (ln 3 + ln 2, ln 3) with weights 6/9, 3/9."""
    s = torch.tensor([[LN3, 0.0, -5.0, LN3 + math.log(2.0)]], dtype=torch.float64)
    torch.testing.assert_close(sparse_softmax(s, k=2), torch.tensor([[1 / 3, 0.0, 0.0, 2 / 3]], dtype=torch.float64))
    torch.testing.assert_close(sparse_softmax(s, k=3), torch.tensor([[3 / 10, 1 / 10, 0.0, 6 / 10]], dtype=torch.float64))
    p = sparse_softmax(s, k=3)
    assert (p[0, 2] == 0).item()  # exactly zero, not tiny
    torch.testing.assert_close(sparse_softmax(s, k=4), s.softmax(-1))
    torch.testing.assert_close(sparse_softmax(s, k=99), s.softmax(-1))
    torch.testing.assert_close(sparse_softmax(s.T, k=2, dim=0), sparse_softmax(s, k=2).T)


def test_loss_by_hand_target_inside_and_outside_the_top_k() -> None:
    """k = 2: log(3 + 6) - s_t; for t = 3: log 9 - log 6; for t = 1 (outside): log 9 - 0."""
    s = torch.tensor([[LN3, 0.0, -5.0, LN3 + math.log(2.0)]] * 3, dtype=torch.float64)
    y = torch.tensor([3, 0, 1])
    want = _t(math.log(9 / 6), math.log(9 / 3), math.log(9.0))
    torch.testing.assert_close(sparse_softmax_cross_entropy(s, y, k=2, reduction="none"), want)
    torch.testing.assert_close(SparseSoftmaxCrossEntropyLoss(k=2)(s, y), want.mean())
    assert "k=2" in repr(SparseSoftmaxCrossEntropyLoss(k=2))


def test_k_equal_C_is_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 7, generator=g, dtype=torch.float64)
    y = torch.randint(0, 7, (9,), generator=g)
    torch.testing.assert_close(sparse_softmax_cross_entropy(x, y, k=7, reduction="none"), F.cross_entropy(x, y, reduction="none"))
    # k < C differs and is smaller: the normaliser drops positive terms
    assert (sparse_softmax_cross_entropy(x, y, k=3, reduction="none") < F.cross_entropy(x, y, reduction="none")).all()


def test_gradient_reaches_only_the_top_k_and_the_target() -> None:
    """dL/ds_i = p_i - 1[i = t] with p the sparse-softmax: zero outside Omega_k u {t}."""
    s = torch.tensor([[LN3, 0.0, -5.0, LN3 + math.log(2.0)]], dtype=torch.float64, requires_grad=True)
    for t, want in ((3, [1 / 3, 0, 0, 2 / 3 - 1]), (1, [1 / 3, -1, 0, 2 / 3])):
        (g,) = torch.autograd.grad(sparse_softmax_cross_entropy(s, torch.tensor([t]), k=2), s)
        torch.testing.assert_close(g, torch.tensor([want], dtype=torch.float64))


def test_weight_ignore_index_and_validation() -> None:
    s = torch.tensor([[LN3, 0.0, -5.0, LN3 + math.log(2.0)]] * 3, dtype=torch.float64)
    y = torch.tensor([3, 0, -100])
    per = _t(math.log(9 / 6), math.log(9 / 3))
    w = _t(2.0, 1.0, 1.0, 0.5)
    torch.testing.assert_close(sparse_softmax_cross_entropy(s, y, k=2, weight=w), (per * _t(0.5, 2.0)).sum() / 2.5)
    torch.testing.assert_close(sparse_softmax_cross_entropy(s, y, k=2, reduction="sum"), per.sum())
    with pytest.raises(ValueError):
        sparse_softmax_cross_entropy(s, y, k=0)
    with pytest.raises(ValueError):
        sparse_softmax(s, k=0)
