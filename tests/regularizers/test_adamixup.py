"""AdaMixUp: the policy region, the intrusion targets, the split batch, gradients into every part."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.regularizers.adamixup import (IntrusionDiscriminator, PolicyRegionGenerator, adamixup_loss, feature_width,
                                       gate_input, penultimate)
from zoo.training.models import MLP


def _model() -> nn.Module:
    torch.manual_seed(0)
    return MLP(6, [8], 3)


def test_penultimate_features_are_the_last_linear_input() -> None:
    model = _model()
    x = torch.rand(4, 6)
    logits, h = penultimate(model, x)
    assert torch.allclose(logits, model(x))
    assert torch.allclose(h, torch.relu(model[0](x)))
    assert feature_width(model) == 8
    with pytest.raises(ValueError):
        penultimate(nn.ReLU(), x)


def test_policy_region_is_inside_the_unit_interval_and_starts_near_thirds() -> None:
    model = _model()
    pi = PolicyRegionGenerator.from_classifier(model)
    a, d = pi(torch.rand(16, 6))
    assert bool(((a >= 0) & (d >= 0) & (a + d <= 1 + 1e-6)).all())
    assert torch.allclose(a, torch.full_like(a, 1 / 3), atol=1e-3) and torch.allclose(d, torch.full_like(d, 1 / 3), atol=1e-3)
    # its body is a fresh copy of the classifier's architecture: own, different weights
    assert all(p is not q for p in pi.body.parameters() for q in model.parameters())
    assert not torch.equal(pi.body[0].weight, model[0].weight)
    assert pi.body[0].weight.shape == model[0].weight.shape


def test_gate_input_is_a_truncated_random_average() -> None:
    x, x2 = torch.ones(2000, 3), torch.zeros(2000, 3)
    g = gate_input(x, x2, torch.Generator().manual_seed(0))
    assert float(g.abs().max()) <= 1.0  # m1 * 1 / 2 with |m1| <= 2
    assert float(g.std()) == pytest.approx(0.5 * 0.8796, abs=0.02)  # std of N(0,1) truncated at 2 is 0.8796


class _FixedPolicy(nn.Module):
    def __init__(self, a: float, d: float) -> None:
        super().__init__()
        self.a, self.d = a, d

    def forward(self, gate: torch.Tensor):
        n = gate.shape[0]
        return torch.full((n,), self.a), torch.full((n,), self.d)


def test_lam_one_gives_plain_cross_entropy_on_the_first_half() -> None:
    model = _model()
    x, y = torch.rand(6, 6), torch.tensor([0, 1, 2, 0, 1, 2])
    t = adamixup_loss(model, _FixedPolicy(1.0, 0.0), IntrusionDiscriminator(8), x, y,
                      generator=torch.Generator().manual_seed(0))
    assert torch.allclose(t.lam, torch.ones(3))
    assert torch.allclose(t.classification, F.cross_entropy(model(x[:3]), y[:3]), atol=1e-6)


def test_lam_is_drawn_inside_the_policy_region() -> None:
    model = _model()
    x, y = torch.rand(64, 6), torch.randint(0, 3, (64,))
    t = adamixup_loss(model, _FixedPolicy(0.2, 0.3), IntrusionDiscriminator(8), x, y,
                      generator=torch.Generator().manual_seed(0))
    assert float(t.lam.min()) >= 0.2 and float(t.lam.max()) <= 0.5 and t.lam.numel() == 32
    assert float(t.lam.std()) > 0.05


def test_intrusion_targets_originals_one_mixed_zero() -> None:
    """A discriminator saying 'original' with logit 10 everywhere costs only on the mixed third: 10 * 2/6."""
    model = _model()
    x, y = torch.rand(4, 6), torch.tensor([0, 1, 2, 0])

    class Const(nn.Module):
        def __init__(self, c: float) -> None:
            super().__init__()
            self.c = c

        def forward(self, h):
            return torch.full((h.shape[0],), self.c)

    t = adamixup_loss(model, _FixedPolicy(0.3, 0.4), Const(10.0), x, y, generator=torch.Generator().manual_seed(0))
    bce_pos, bce_neg = F.softplus(torch.tensor(-10.0)), F.softplus(torch.tensor(10.0))
    assert float(t.intrusion) == pytest.approx(float((2 * bce_neg + 4 * bce_pos) / 6), rel=1e-6)
    t2 = adamixup_loss(model, _FixedPolicy(0.3, 0.4), Const(10.0), x, y, generator=torch.Generator().manual_seed(0),
                       intrusion_weight=0.5)
    assert float(t2.intrusion) == pytest.approx(0.5 * float(t.intrusion), rel=1e-6)


def test_gradients_reach_the_policy_the_discriminator_and_the_classifier() -> None:
    model = _model()
    pi = PolicyRegionGenerator.from_classifier(model, init_std=0.1)
    disc = IntrusionDiscriminator(feature_width(model))
    x, y = torch.rand(16, 6), torch.randint(0, 3, (16,))
    t = adamixup_loss(model, pi, disc, x, y, generator=torch.Generator().manual_seed(0))
    t.total.backward()
    # (the body's own output layer is unused: pi reads its penultimate features)
    for part in (model, pi.head, pi.body[0], disc):
        assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in part.parameters()), part
    # the policy's gradient comes through lam (the reparametrisation): with lam detached it vanishes
    pi.zero_grad()
    a, d = pi(gate_input(x[:8], x[:8]))
    assert a.requires_grad and d.requires_grad


def test_small_batches_are_refused() -> None:
    model = _model()
    with pytest.raises(ValueError):
        adamixup_loss(model, _FixedPolicy(0.3, 0.3), IntrusionDiscriminator(8), torch.rand(1, 6), torch.tensor([0]))
