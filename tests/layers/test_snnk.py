"""SNNK random features: unbiased estimates of f(w^T x + b) whose error falls like 1/sqrt(m); bundling keeps G fixed."""

from __future__ import annotations

import pytest
import torch

from zoo.layers.snnk import ACTIVATIONS, BundledSNNK, SNNKLinear, exact, kernel_estimate


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_estimate_converges_to_the_layer_output(activation):
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(50, 8, generator=g, dtype=torch.float64)
    w = 0.3 * torch.randn(6, 8, generator=g, dtype=torch.float64)
    b = 0.2 * torch.randn(6, generator=g, dtype=torch.float64)
    ex = exact(x, w, b, activation)
    errs = []
    for m in (64, 16384):
        big = torch.randn(m, 8, generator=g, dtype=torch.float64)
        errs.append(float((kernel_estimate(x, w, b, big, activation) - ex).pow(2).mean().sqrt()))
    assert errs[1] < 0.05 * ex.abs().mean() + 0.02
    assert errs[1] < errs[0] / 4  # sqrt(16384/64) = 16: allow slack


def test_estimate_is_unbiased_over_many_draws():
    g = torch.Generator().manual_seed(1)
    x, w, b = 0.5 * torch.randn(3, 4, generator=g, dtype=torch.float64), 0.5 * torch.randn(2, 4, generator=g, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    for act in ACTIVATIONS:
        mean = sum(kernel_estimate(x, w, b, torch.randn(64, 4, generator=g, dtype=torch.float64), act) for _ in range(400)) / 400
        assert torch.allclose(mean, exact(x, w, b, act), rtol=0.06, atol=0.03), act


def test_snnk_linear_trains_w_and_bundled_keeps_g_fixed():
    torch.manual_seed(0)
    layer = SNNKLinear(8, 4, 4096, "exp", input_scale=0.3)
    x = torch.randn(5, 8)
    z = layer(x)
    ref = torch.exp(0.3 * x @ layer.weight.T + layer.bias)
    assert torch.allclose(z, ref, rtol=0.25, atol=0.1)
    z.sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    blk = BundledSNNK(64, 10, 32, "cos")
    assert [n for n, p in blk.named_parameters()] == ["linear.weight", "linear.bias"]
    assert blk.linear.in_features == 64 and "features.g" in blk.state_dict()
