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


def test_wavg_templates_are_distinct_spread_windows_and_alpha_changes_the_weight():
    torch.manual_seed(0)
    bank = ParameterBank(40)
    layer = SharedLinear(bank, 5, 4, "wavg", templates=4)
    assert layer.offsets == [0, 10, 20, 30]
    before = layer.weight().detach().clone()
    with torch.no_grad():
        layer.alpha[1:] = 0.0
    # with one template left the layer is that single window, scaled by its coefficient
    assert torch.allclose(layer.weight().flatten(), layer.alpha[0] * bank.theta[torch.arange(20) % 40])
    assert not torch.allclose(before, layer.weight())


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_only_the_bank_biases_and_coefficients_are_stored_and_hash_index_regenerates(mapping):
    torch.manual_seed(0)
    net = SharedMLP(64, [100, 50], 10, budget=777, mapping=mapping, templates=3)
    state = net.state_dict()
    biases = 100 + 50 + 10
    extra = 3 * 3 if mapping == "wavg" else 0
    assert sum(t.numel() for t in state.values()) == 777 + biases + extra
    assert not any("index" in k or "sign" in k for k in state)
    torch.manual_seed(1)
    other = SharedMLP(64, [100, 50], 10, budget=777, mapping=mapping, templates=3)
    other.load_state_dict(state)
    x = torch.randn(5, 64)
    assert torch.allclose(other(x), net(x), atol=1e-6)


def test_sharing_learns_a_toy_task_through_the_bank():
    torch.manual_seed(0)
    x = torch.randn(256, 16)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    net = SharedMLP(16, [32], 4, budget=100, mapping="wavg", templates=4)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    first = None
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
