"""EQ-Net elastic bit-width supernet (zoo.quant.elastic_quantization): width sampling, straight-through
gradients summed over widths, a seed-determined sampler, and exports at each width."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.compress import PackedLinear, export, measure
from zoo.experiments._compressbench import Batch
from zoo.quant import FakeQuant
from zoo.quant.elastic_quantization import ElasticQuant, attach_elastic, sample_widths, set_bits, supernet_loss
from zoo.training import MLP

SPACE = [2, 3, 4, 8]


def _method(**opts) -> ElasticQuant:
    return ElasticQuant(None, {}, opts, "eq")  # type: ignore[arg-type]  (the hooks used here need no task)


def _batch(x: torch.Tensor, y: torch.Tensor) -> Batch:
    return Batch(torch.arange(len(x)), x, y, 0, 1, 1, 1)


def test_sample_widths_sandwich_and_uniform_draws():
    gen = torch.Generator().manual_seed(0)
    draws = [sample_widths(SPACE, 1, True, gen) for _ in range(200)]
    assert all(d[:2] == [8, 2] and len(d) == 3 for d in draws)
    counts = {b: sum(d[2] == b for d in draws) for b in SPACE}
    assert all(20 <= c <= 80 for c in counts.values()), counts  # ~50 each
    assert len(sample_widths(SPACE, 2, False, gen)) == 2


def test_method_loss_trains_every_width_of_the_space():
    """The forward passes of the method's loss visit max and min at every step and every width overall."""
    torch.manual_seed(0)
    model = MLP(6, [5], 3)
    m = _method(space=SPACE, samples=1, sandwich=True, export_bits=4)
    m.attach(model)
    seen: list[list[int]] = []
    lin = [l for l in model.modules() if isinstance(l, nn.Linear)][0]
    lin.register_forward_pre_hook(lambda mod, inp: seen[-1].append(m.quantizers[0].bits))
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    for _ in range(40):
        seen.append([])
        m.loss(model, _batch(x, y))
    assert all(8 in s and 2 in s and len(s) == 3 for s in seen)
    assert {b for s in seen for b in s} == set(SPACE)


def test_supernet_gradient_is_the_straight_through_sum_over_widths():
    """dL/dW = sum over the trained widths of dCE/dQ_b(W) (one layer: the STE passes the gradient unchanged)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 3))
    qs = attach_elastic(model, 8)
    lin = model[0]
    w = lin.parametrizations.weight.original
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    supernet_loss(model, qs, [8, 2, 3], x, y).backward()
    assert w.grad is not None and bool((w.grad != 0).any())
    expect = torch.zeros_like(w)
    for b in (8, 2, 3):
        wq = FakeQuant(b)(w.detach()).detach().requires_grad_(True)
        F.cross_entropy(F.linear(x, wq, lin.bias.detach()), y).backward()
        expect += wq.grad
    assert torch.allclose(w.grad, expect, atol=1e-6)


def test_sampler_is_determined_by_the_seed_not_the_export_width():
    seqs = []
    for bits in (2, 8):
        torch.manual_seed(3)
        m = _method(export_bits=bits)
        m.attach(MLP(4, [3], 2))
        seqs.append([sample_widths(m.space, 1, True, m.gen) for _ in range(20)])
    assert seqs[0] == seqs[1]


def test_export_at_each_width_holds_that_width_and_shrinks():
    torch.manual_seed(1)
    x = torch.randn(32, 64)
    model = MLP(64, [128], 10)
    qs = attach_elastic(model, 8)
    model.eval()
    sizes = {}
    for b in (8, 4, 2):
        set_bits(qs, b)
        small = export(model)
        with torch.no_grad():
            assert float((small(x) - model(x)).abs().max()) < 1e-4
        assert all(m.depths == [b] for m in small.modules() if isinstance(m, PackedLinear))
        sizes[b] = measure(small, x).payload_bytes
    assert sizes[2] < sizes[4] < sizes[8]
    assert sizes[2] >= (64 * 128 + 128 * 10) * 2 // 8
