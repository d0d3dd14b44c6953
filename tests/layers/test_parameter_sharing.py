"""Shared parameter banks: every mapping draws only on the bank; WAvg mixes templates with learned coefficients."""

from __future__ import annotations

import pytest
import torch

from zoo.layers.parameter_sharing import MAPPINGS, ParameterBank, SharedLinear, SharedMLP


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_budget_is_the_bank_and_materialize_matches(mapping):
    torch.manual_seed(0)
    net = SharedMLP(64, [100], 10, budget=1000, mapping=mapping)
    weights = sum(p.numel() for n, p in net.named_parameters() if "bias" not in n and "alpha" not in n)
    assert weights == 1000
    x = torch.randn(7, 64)
    assert torch.allclose(net.materialize()(x), net(x), atol=1e-6)
    net(x).pow(2).sum().backward()
    assert net.bank.theta.grad.abs().sum() > 0


def test_wavg_is_the_alpha_weighted_sum_of_bank_windows():
    torch.manual_seed(0)
    bank = ParameterBank(50)
    layer = SharedLinear(bank, 4, 6, "wavg", templates=3)
    want = sum(a * bank.theta[(torch.arange(24) + o) % 50] for a, o in zip(layer.alpha, layer.offsets))
    assert torch.allclose(layer.weight().flatten(), want)
    layer.weight().sum().backward()
    assert layer.alpha.grad is not None and layer.alpha.grad.abs().sum() > 0


def test_repeat_layers_read_consecutive_windows_and_hash_uses_signs():
    torch.manual_seed(0)
    bank = ParameterBank(30)
    a, b = SharedLinear(bank, 2, 5, "repeat"), SharedLinear(bank, 2, 5, "repeat")
    assert (a.offset, b.offset) == (0, 10)
    h = SharedLinear(bank, 3, 3, "hash")
    assert set(h.sign.tolist()) == {-1.0, 1.0}
    assert torch.allclose(h.weight().flatten(), h.gain * h.sign * bank.theta[h.index])
