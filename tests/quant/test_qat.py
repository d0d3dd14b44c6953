"""Quantisation-aware training (zoo.quant.qat): bits per layer, straight-through training, exported codes; brevitas as oracle."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.compress import PackedLinear, export, measure
from zoo.quant import FakeQuant, quantizers
from zoo.quant.qat import attach_qat
from zoo.training import MLP


def _bits(model: nn.Module) -> list[int]:
    return [q.bits for _, q in quantizers(model)]


def test_bits_per_layer_edges_at_edge_bits():
    model = MLP(12, [8, 8, 8], 3)
    attach_qat(model, bits=4, edge_bits=8)
    assert _bits(model) == [8, 4, 4, 8]
    other = MLP(12, [8, 8], 3)
    attach_qat(other, bits=4)
    assert _bits(other) == [4, 4, 4]


def test_forward_uses_fake_quantised_weights_and_gradient_reaches_master_weights():
    torch.manual_seed(0)
    model = MLP(6, [5], 3)
    attach_qat(model, bits=3)
    lin = [m for m in model.modules() if isinstance(m, nn.Linear)][0]
    w = lin.parametrizations.weight.original
    assert torch.allclose(lin.weight, FakeQuant(3)(w.detach()))
    assert lin.weight.unique().numel() <= 5 * 7  # at most 2^3 - 1 levels per row, 5 rows
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    F.cross_entropy(model(x), y).backward()
    assert w.grad is not None and bool((w.grad != 0).any())


def test_qat_training_lowers_the_loss_of_the_quantised_model():
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    model = MLP(10, [32], 3)
    attach_qat(model, bits=4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = float(F.cross_entropy(model(x), y))
    for _ in range(100):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    assert float(F.cross_entropy(model(x), y)) < 0.5 * first


def test_exported_model_holds_the_trained_codes_and_is_smaller():
    torch.manual_seed(1)
    x = torch.randn(32, 64)
    dense = MLP(64, [128, 128], 10).eval()
    size_dense = measure(export(dense), x).payload_bytes
    model = MLP(64, [128, 128], 10)
    model.load_state_dict(dense.state_dict())
    attach_qat(model, bits=4, edge_bits=8)
    model.eval()
    small = export(model)
    with torch.no_grad():
        assert float((small(x) - model(x)).abs().max()) < 1e-4  # export gap at float rounding
    packed = [m for m in small.modules() if isinstance(m, PackedLinear)]
    assert [m.depths for m in packed] == [[8], [4], [8]]
    report = measure(small, x)
    # weights at 8/4/8 bits: the codes alone are (64*128 + 128*10) bytes + 128*128/2
    assert report.payload_bytes < size_dense / 5
    assert report.payload_bytes >= 64 * 128 + 128 * 128 // 2 + 128 * 10


def test_learn_scale_option_trains_a_scale():
    model = MLP(6, [5], 3)
    qs = attach_qat(model, bits=4, learn_scale=True)
    assert all(q.learn_scale for q in qs)
    model(torch.randn(4, 6)).sum().backward()
    assert qs[0].log_scale.grad is not None


def test_matches_brevitas_qat_forward_and_weight_gradient():
    qnn = pytest.importorskip("brevitas.nn")
    from brevitas.quant import Int8WeightPerChannelFloat

    torch.manual_seed(3)
    ref = qnn.QuantLinear(20, 7, bias=True, weight_quant=Int8WeightPerChannelFloat, weight_bit_width=4)
    ours = nn.Sequential(nn.Linear(20, 7))
    ours[0].load_state_dict({"weight": ref.weight.detach().clone(), "bias": ref.bias.detach().clone()})
    attach_qat(ours, bits=4)
    x = torch.randn(9, 20)
    torch.testing.assert_close(ours(x), ref(x).value if hasattr(ref(x), "value") else ref(x), rtol=0, atol=1e-5)
    (ours(x) ** 2).sum().backward()
    out = ref(x)
    ((out.value if hasattr(out, "value") else out) ** 2).sum().backward()
    g_ours = ours[0].parametrizations.weight.original.grad
    # brevitas' max-abs scale is differentiable; only the row's max entry sees that extra path
    amax = ref.weight.detach().abs().argmax(1, keepdim=True)
    keep = torch.ones_like(g_ours, dtype=torch.bool).scatter_(1, amax, False)
    torch.testing.assert_close(g_ours[keep], ref.weight.grad[keep], rtol=1e-4, atol=1e-5)
