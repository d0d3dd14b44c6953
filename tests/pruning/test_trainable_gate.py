"""Trainable gate function: 0/1 forward, shaped gradient; gates learn which units to keep; hardening is exact."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.compress import export
from zoo.pruning.trainable_gate import TrainableGates, gate_agreement, harden_gates, trainable_gate
from zoo.training import MLP


def test_gate_is_step_forward_with_shaped_gradient() -> None:
    w = torch.tensor([-0.7, -0.01, 0.02, 0.5], requires_grad=True)
    v = trainable_gate(w, m=1e4)
    assert torch.allclose(v, torch.tensor([0.0, 0.0, 1.0, 1.0]), atol=1e-4)
    v.sum().backward()
    assert torch.allclose(w.grad, torch.ones(4), atol=1e-3)  # g = 1: the gradient reaches every gate
    w2 = torch.tensor([0.0, 3.0], requires_grad=True)
    trainable_gate(w2, m=1e4, shape="sigmoid").sum().backward()
    assert w2.grad[0] > 0.99 and w2.grad[1] < 1e-6  # bounded shape: 4 sigma'(w/t)


def test_sparsity_loss_drives_kept_fraction_to_target() -> None:
    torch.manual_seed(0)
    model = MLP(8, [20], 3)
    gates = TrainableGates(model, keep=0.25, init=0.1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    for _ in range(300):
        loss = F.cross_entropy(model(x), y) + 10.0 * gates.sparsity_loss()
        opt.zero_grad(); loss.backward(); opt.step()
    kept = float((gates.gates[0] > 0).float().mean())
    assert abs(kept - 0.25) <= 0.1, kept
    assert gate_agreement(model, 0.25) >= 0.9


def test_gates_keep_the_informative_units() -> None:
    """Only units reading input 0 matter for the label; the learned gates keep them."""
    torch.manual_seed(1)
    model = MLP(4, [8], 2)
    with torch.no_grad():
        w = model[0].weight
        w.zero_()
        w[:2, 0] = torch.tensor([2.0, -2.0])  # informative units 0, 1
        w[2:, 1:] = torch.randn(6, 3)          # noise units
        model[0].bias.zero_()
        model[2].weight.copy_(0.3 * torch.randn(2, 8))
        model[2].weight[:, :2] = torch.tensor([[-2.0, 2.0], [2.0, -2.0]])
    gates = TrainableGates(model, keep=0.25, init=0.1)
    opt = torch.optim.SGD(list(gates.gates), lr=0.05)  # only the gates learn
    x = torch.randn(256, 4)
    y = (x[:, 0] > 0).long()
    for _ in range(200):
        loss = F.cross_entropy(model(x), y) + 10.0 * gates.sparsity_loss()
        opt.zero_grad(); loss.backward(); opt.step()
    kept = harden_gates(model, 0.25)
    assert kept == [0.25]
    alive = (model[0].weight.abs().sum(1) > 0).nonzero().flatten().tolist()
    assert alive == [0, 1], alive


def test_hardened_export_is_smaller_and_exact() -> None:
    torch.manual_seed(0)
    model = MLP(16, [32, 16], 4)
    gates = TrainableGates(model, keep=0.5)
    with torch.no_grad():
        for g in gates.gates:
            g.copy_(torch.randn_like(g))
    harden_gates(model, 0.5)
    x = torch.randn(10, 16)
    ex = export(model.eval())
    assert torch.allclose(ex(x), model(x), atol=1e-5)
    n = sum(p.numel() for p in ex.parameters())
    assert n == 16 * 16 + 16 + 8 * 16 + 8 + 4 * 8 + 4  # 32 -> 16 and 16 -> 8 units
