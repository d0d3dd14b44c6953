"""Nested dropout: the authors' k distribution, prefix masking, eval-mode K, K selection, insertion."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zoo.regularizers.nested_dropout import (NestedDropout, feature_dropout_layer, gaussian_k_distribution,
                                             prefix_logits, prefix_masks, select_k, with_feature_dropout)
from zoo.training import MLP


def test_gaussian_k_distribution_hand_values() -> None:
    """p(k) ∝ exp(-((k - mu)/sigma)^2), k = 1..D: D = 3, sigma = 1, mu = 0 -> e^-1, e^-4, e^-9."""
    w = torch.tensor([math.exp(-1), math.exp(-4), math.exp(-9)], dtype=torch.float64)
    torch.testing.assert_close(gaussian_k_distribution(3, 1.0), w / w.sum())
    w = torch.tensor([math.exp(-((k - 2) / 2) ** 2) for k in (1, 2, 3, 4)], dtype=torch.float64)
    torch.testing.assert_close(gaussian_k_distribution(4, 2.0, mu=2.0), w / w.sum())
    with pytest.raises(ValueError):
        gaussian_k_distribution(3, 0.0)


def test_training_keeps_a_prefix_of_drawn_length_without_rescaling() -> None:
    layer = NestedDropout(6, sigma=2.0, generator=torch.Generator().manual_seed(0))
    h = torch.rand(4, 6) + 1.0
    seen = set()
    for _ in range(200):
        out = layer(h)
        k = layer.last_k
        assert k is not None and 1 <= k <= 6
        seen.add(k)
        torch.testing.assert_close(out[:, :k], h[:, :k])  # kept as is, not rescaled
        assert torch.all(out[:, k:] == 0)
    assert 1 in seen and len(seen) >= 3
    # the draws follow p(k): k = 1 most often for mu = 0
    layer = NestedDropout(6, sigma=2.0, generator=torch.Generator().manual_seed(1))
    counts = torch.bincount(torch.tensor([layer.sample_k() for _ in range(4000)]), minlength=7)[1:].double()
    torch.testing.assert_close(counts / 4000, gaussian_k_distribution(6, 2.0), atol=0.03, rtol=0)


def test_eval_uses_k_eval_and_geometric_option() -> None:
    layer = NestedDropout(5, sigma=1.0).eval()
    h = torch.rand(2, 5) + 1
    torch.testing.assert_close(layer(h), h)  # default: every feature
    layer.k_eval = 2
    assert torch.all(layer(h)[:, 2:] == 0) and torch.equal(layer(h)[:, :2], h[:, :2])
    geo = NestedDropout(4, distribution="geometric", geometric_p=0.5)
    want = torch.tensor([0.5, 0.25, 0.125, 0.0625], dtype=torch.float64)
    torch.testing.assert_close(geo.probs, want / want.sum())
    with pytest.raises(ValueError):
        NestedDropout(4, distribution="uniform")
    with pytest.raises(ValueError):
        layer(torch.rand(2, 4))


def test_prefix_logits_and_select_k() -> None:
    g = torch.Generator().manual_seed(2)
    lin = nn.Linear(5, 3)
    h = torch.randn(7, 5, generator=g)
    pl = prefix_logits(h, lin)
    masks = prefix_masks(5)
    for k in range(1, 6):
        torch.testing.assert_close(pl[:, k - 1], lin(h * masks[k - 1]))
    # a classifier that only the first two features inform: K = 2 is the smallest best
    w = torch.zeros(2, 4)
    w[0, 0], w[1, 1] = 1.0, 1.0
    w[0, 3] = 50.0  # the fourth feature would flip every prediction to class 0
    clf = nn.Linear(4, 2)
    with torch.no_grad():
        clf.weight.copy_(w)
        clf.bias.zero_()
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
    y = torch.tensor([0, 1])
    k, accs = select_k(lambda z: z, clf, x, y)
    assert k == 2 and accs == [0.5, 1.0, 1.0, 0.5]


def test_with_feature_dropout_shares_weights_and_inserts_before_classifier() -> None:
    torch.manual_seed(0)
    m = MLP(6, [8, 4], 3)
    layer = NestedDropout(4, sigma=1.0)
    out = with_feature_dropout(m, layer)
    kids = list(out.children())
    assert kids[-2] is layer and kids[-1] is list(m.children())[-1]
    assert all(a is b for a, b in zip(out.parameters(), m.parameters(), strict=True))
    x = torch.randn(5, 6)
    out.eval()
    torch.testing.assert_close(out(x), m(x))  # k_eval = all features: the same function
    layer.k_eval = 1
    body = torch.nn.Sequential(*list(m.children())[:-1])
    want = kids[-1](body(x) * prefix_masks(4)[0])
    torch.testing.assert_close(out(x), want)
    assert isinstance(feature_dropout_layer("dropout", 4, p=0.5), nn.Dropout)
    with pytest.raises(ValueError):
        with_feature_dropout(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), layer)
