"""The fake-quantisers: exact values, the straight-through gradient, learnable bit depth, size loss; brevitas as oracle."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.quant import FakeQuant, LearnableBitDepth, attach, post_training_quantize, round_ste, size_bits, size_loss
from zoo.quant.uniform import symmetric_scale
from zoo.training import MLP


def test_round_ste_rounds_forward_and_passes_gradient():
    x = torch.tensor([0.4, 0.6, -1.5, 2.2], requires_grad=True)
    y = round_ste(x)
    assert torch.equal(y, torch.round(x.detach()))
    (y * torch.arange(4.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(4.0))


def test_fake_quant_hand_values():
    w = torch.tensor([[1.0, -0.5, 0.26, 0.0], [0.2, 0.1, -0.05, 0.0]])
    q = FakeQuant(3)(w)  # qmax 3: scales 1/3 and 0.2/3
    s = torch.tensor([1 / 3, 0.2 / 3])[:, None]
    assert torch.allclose(q, s * torch.tensor([[3.0, -2.0, 1.0, 0.0], [3.0, 2.0, -1.0, 0.0]]))
    codes, scale, bits = FakeQuant(3).export_codes(w)
    assert torch.equal(codes, torch.tensor([[3, -2, 1, 0], [3, 2, -1, 0]]))
    assert torch.equal(bits, torch.tensor([3, 3])) and torch.allclose(scale, s.reshape(-1))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_fake_quant_matches_brevitas_per_channel_int_weights(bits):
    qnn = pytest.importorskip("brevitas.nn")
    from brevitas.quant import Int8WeightPerChannelFloat

    torch.manual_seed(bits)
    layer = qnn.QuantLinear(20, 7, bias=False, weight_quant=Int8WeightPerChannelFloat, weight_bit_width=bits)
    w = layer.weight.detach().clone()
    torch.testing.assert_close(FakeQuant(bits)(w), layer.quant_weight().value.detach(), rtol=0, atol=1e-6)


def test_learned_scale_receives_gradient_and_fixed_scale_does_not_exist():
    w = torch.randn(4, 6)
    q = FakeQuant(4, learn_scale=True, init=w)
    q(w).square().sum().backward()
    assert q.log_scale.grad is not None and bool((q.log_scale.grad != 0).any())
    assert not list(FakeQuant(4).parameters())


def test_learnable_bit_depth_gets_gradient_through_the_clamp_and_export_matches_forward():
    torch.manual_seed(0)
    w = torch.randn(5, 10)
    q = LearnableBitDepth(w, bits=2.0)
    w = 3 * w  # the weights grew past the range set at init: the clamp clips them
    out = q(w)
    # growing b would reduce the clipping error, so d/db < 0 for the clipped rows
    ((out - w) ** 2).sum().backward()
    assert q.bits.grad is not None and bool((q.bits.grad < 0).any())
    assert q.exponent.grad is not None
    codes, scale, bits = q.export_codes(w)
    assert torch.allclose(codes.float() * scale[:, None], q(w).detach())
    assert int(bits.max()) <= 2


def test_zero_bit_channels_are_zero_and_need_zero_bits():
    w = torch.randn(3, 4)
    q = LearnableBitDepth(w, bits=4.0)
    with torch.no_grad():
        q.bits[1] = -1.0  # clipped to 0 bits
    assert bool((q(w)[1] == 0).all())
    assert int(q.export_codes(w)[2][1]) == 0


def test_size_loss_is_mean_bits_per_weight_and_differentiable():
    model = MLP(6, [4], 3)
    qs = attach(model, lambda m: LearnableBitDepth(m.weight, bits=5.0))
    assert math.isclose(float(size_loss(model).detach()), 5.0, rel_tol=1e-6)
    assert math.isclose(float(size_bits(model).detach()), 5.0 * (6 * 4 + 4 * 3), rel_tol=1e-6)
    size_loss(model).backward()
    assert all(q.bits.grad is not None and bool((q.bits.grad > 0).all()) for q in qs)


def test_ptq_quantises_every_layer_and_size_bits_counts_fixed_depth():
    model = MLP(6, [4], 3)
    post_training_quantize(model, 4)
    assert math.isclose(float(size_bits(model)), 4.0 * (24 + 12))
    with pytest.raises(ValueError, match="bits must be in 2..16"):
        FakeQuant(1)


def test_symmetric_scale_of_zero_row_is_one():
    assert torch.equal(symmetric_scale(torch.zeros(2, 3), 4), torch.ones(2))
