"""Export: folded masks, shrunk units, CSR and packed integer layers compute what the compressed model computes, in fewer bytes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from zoo.compress import PackedLinear, SparseLinear, export, measure, shrink
from zoo.compress.export import PackedConv2d, SparseConv2d
from zoo.pruning import GradualMagnitudePruning
from zoo.quant import FakeQuant, LearnableBitDepth, attach, post_training_quantize
from zoo.training import MLP, SmallCNN


def _mlp(seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP(64, [40, 30], 10).eval()


def _close(a: nn.Module, b: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=1e-5, atol=1e-5)


def test_dense_model_exports_unchanged():
    m = _mlp()
    e = export(m)
    assert all(type(x) in (nn.Linear, nn.ReLU) for x in e)
    _close(m, e, torch.randn(8, 64))


def test_export_leaves_the_input_model_and_its_parametrizations_intact():
    m = _mlp()
    GradualMagnitudePruning(m, 0.8, begin_step=0, end_step=1).prune_to(0.8)
    x = torch.randn(4, 64)
    before = m(x)
    export(m)
    assert parametrize.is_parametrized(m[0], "weight")
    torch.testing.assert_close(m(x), before)


def test_unstructured_sparsity_becomes_csr_with_fewer_bytes():
    m = _mlp()
    GradualMagnitudePruning(m, 0.9, begin_step=0, end_step=1).prune_to(0.9)
    e = export(m)
    assert all(isinstance(e[i], SparseLinear) for i in (0, 2, 4))
    x = torch.randn(16, 64)
    _close(m, e, x)
    r, r0 = measure(e, x, latency=False), measure(export(_mlp()), x, latency=False)
    kept = sum(int((m[i].weight != 0).sum()) for i in (0, 2, 4))
    assert kept == round(0.1 * (64 * 40 + 40 * 30 + 30 * 10))
    # units left without inputs or outputs are removed as well, so the export stores at most that many
    nz = sum(int((layer.weight != 0).sum()) for layer in (e[0], e[2], e[4]))
    assert 0 < nz <= kept and r.nonzero <= kept + sum(e[i].bias.numel() for i in (0, 2, 4))
    assert r.payload_bytes < 0.2 * r0.payload_bytes  # 6 bytes per kept weight instead of 4 per weight
    assert r.macs == nz  # a CSR product costs one MAC per stored weight


def test_dense_layers_stay_dense_when_csr_would_be_larger():
    m = _mlp()
    GradualMagnitudePruning(m, 0.2, begin_step=0, end_step=1).prune_to(0.2)
    e = export(m)
    assert not any(isinstance(x, SparseLinear) for x in e)  # 80% kept: CSR's 6 bytes a weight lose to 4
    _close(m, e, torch.randn(4, 64))


def test_shrink_removes_zero_rows_folds_their_constant_and_unused_inputs():
    m = _mlp()
    with torch.no_grad():
        m[0].weight[:10] = 0  # dead rows with live biases: relu(b) moves into the next bias
        m[2].weight[:, 30:] = 0  # units 30..39 of layer 0 are never read
        m[2].weight[:5] = 0
        m[2].bias[:5] = -1.0  # relu(-1) = 0: removed without a trace
    ref = copy.deepcopy(m)
    kept = shrink(m)
    assert m[0].weight.shape == (20, 64) and m[2].weight.shape == (25, 20) and m[4].weight.shape == (10, 25)
    assert torch.equal(kept[m[0]][0], torch.arange(10, 30))
    _close(ref, m, torch.randn(8, 64))


def test_shrink_in_a_cnn_keeps_zero_padding_exact():
    torch.manual_seed(0)
    cnn = SmallCNN(1, 10, 8, 8).eval()
    with torch.no_grad():
        cnn.features[0].weight[:3] = 0
        cnn.features[0].bias[:2] = -1.0  # channels 0, 1: relu -> 0, removable
        cnn.features[0].bias[2] = 0.5  # channel 2: a nonzero constant read by a padded conv: must stay
        cnn.features[3].weight[:4] = 0  # read by the linear classifier: folded into its bias
    ref = copy.deepcopy(cnn)
    shrink(cnn)
    assert cnn.features[0].weight.shape[0] == 6 and cnn.features[3].weight.shape == (12, 6, 3, 3)
    assert cnn.classifier.weight.shape == (10, 12 * 2 * 2)
    _close(ref, cnn, torch.randn(4, 1, 8, 8))


def test_quantised_layers_store_packed_integers_and_compute_the_fake_quantised_function():
    m = _mlp()
    post_training_quantize(m, 4)
    e = export(m)
    assert all(isinstance(e[i], PackedLinear) for i in (0, 2, 4))
    x = torch.randn(8, 64)
    _close(m, e, x)
    sd = e.state_dict()
    assert sd["0.codes_4"].dtype == torch.uint8 and sd["0.codes_4"].numel() == 40 * 64 * 4 // 8
    assert "0.weight" not in sd  # the float weight is rebuilt, never stored
    r, r0 = measure(e, x, latency=False), measure(export(_mlp()), x, latency=False)
    # 4 bits instead of 32 per weight, plus float scales and biases (the file's framing, a few KB
    # for any model, is left out: payload_bytes)
    assert r.payload_bytes < r0.payload_bytes / 4 and r.bytes < r0.bytes
    assert r.entropy_bytes < 1.1 * r.payload_bytes  # 16 symbols: the table costs little


def test_mixed_bit_depths_and_zero_bit_channels():
    m = _mlp()
    qs = attach(m, lambda layer: LearnableBitDepth(layer.weight, bits=6.0))
    with torch.no_grad():
        qs[0].bits[:10] = 0.0  # ten rows of layer 0 quantised away: removed by the exporter
        qs[0].bits[10:20] = 3.0
    e = export(m)
    assert e[0].weight.shape[0] == 30 and sorted(e[0].depths) == [3, 6]
    _close(m, e, torch.randn(8, 64))


def test_conv_layers_export_packed_or_sparse():
    torch.manual_seed(0)
    cnn = SmallCNN(1, 10, 8, 8).eval()
    q = copy.deepcopy(cnn)
    post_training_quantize(q, 8)
    eq = export(q)
    assert isinstance(eq.features[0], PackedConv2d)
    x = torch.randn(4, 1, 8, 8)
    _close(q, eq, x)
    s = copy.deepcopy(cnn)
    GradualMagnitudePruning(s, 0.9, begin_step=0, end_step=1).prune_to(0.9)
    es = export(s)
    assert isinstance(es.features[3], SparseConv2d)
    _close(s, es, x)


def test_a_quantiser_must_end_the_weight_chain():
    m = _mlp()
    parametrize.register_parametrization(m[0], "weight", FakeQuant(4))
    GradualMagnitudePruning(m, 0.5, begin_step=0, end_step=1)  # a mask registered after the quantiser
    with pytest.raises(ValueError, match="must be the last"):
        export(m)
