"""Mono-Forward: the local loss by hand, locality of every layer's gradient, prediction, learning."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from zoo.learning_rules.mono_forward import MonoForwardNet, local_losses, make_optimizers, predict, train_step


def test_local_losses_by_hand() -> None:
    torch.manual_seed(0)
    net = MonoForwardNet(5, [4, 3], 2)
    x, y = torch.randn(7, 5), torch.randint(0, 2, (7,))
    a1 = torch.relu(x @ net.layers[0].weight.t() + net.layers[0].bias)
    a2 = torch.relu(a1 @ net.layers[1].weight.t() + net.layers[1].bias)
    expected = [F.cross_entropy(a1 @ net.projections[0].t(), y), F.cross_entropy(a2 @ net.projections[1].t(), y)]
    got = local_losses(net, x, y)
    for g, e in zip(got, expected):
        assert float(g.detach()) == pytest.approx(float(e.detach()), rel=1e-6)


def test_each_layer_gets_the_gradient_of_its_own_loss_only() -> None:
    torch.manual_seed(0)
    net = MonoForwardNet(5, [4, 3], 2)
    x, y = torch.randn(7, 5), torch.randint(0, 2, (7,))
    losses = local_losses(net, x, y)
    own = [torch.autograd.grad(losses[i], [*net.layers[i].parameters(), net.projections[i]], retain_graph=True)
           for i in range(2)]
    torch.stack(losses).sum().backward()
    for i in range(2):
        for p, g in zip([*net.layers[i].parameters(), net.projections[i]], own[i]):
            assert torch.allclose(p.grad, g)
    # the first layer's gradient carries nothing of the second layer's loss
    net.zero_grad()
    local_losses(net, x, y)[1].backward()
    assert net.layers[0].weight.grad is None or float(net.layers[0].weight.grad.abs().sum()) == 0.0


def test_first_layer_learns_the_same_with_or_without_a_second() -> None:
    torch.manual_seed(0)
    one, two = MonoForwardNet(6, [5], 3), MonoForwardNet(6, [5, 4], 3)
    two.layers[0].load_state_dict(one.layers[0].state_dict())
    two.projections[0].data.copy_(one.projections[0].data)
    o1, o2 = make_optimizers(one, 0.01), make_optimizers(two, 0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x, y = torch.rand(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
        train_step(one, o1, x, y)
        train_step(two, o2, x, y)
    assert torch.equal(one.layers[0].weight, two.layers[0].weight)
    assert torch.equal(one.projections[0], two.projections[0])


def test_step_moves_every_layer_and_projection() -> None:
    torch.manual_seed(0)
    net = MonoForwardNet(6, [5, 4], 3)
    before = [p.clone() for p in net.parameters()]
    train_step(net, make_optimizers(net, 0.01), torch.rand(8, 6), torch.randint(0, 3, (8,)))
    assert all(not torch.equal(b, p) for b, p in zip(before, net.parameters()))


def test_prediction_reads_the_last_layer_by_default() -> None:
    torch.manual_seed(0)
    net = MonoForwardNet(6, [5, 4], 3)
    with torch.no_grad():  # positive activations; layer 1 reads out class 0, layer 2 class 2
        for layer in net.layers:
            layer.bias.fill_(1.0)
        net.projections[0].zero_()[0] = 1.0
        net.projections[1].zero_()[2] = 1.0
    x = torch.rand(20, 6)
    gs = net(x)
    assert predict(net, x).tolist() == [2] * 20 and torch.equal(predict(net, x), gs[-1].argmax(1))
    assert predict(net, x, layer=0).tolist() == [0] * 20


def test_learns_a_toy_problem() -> None:
    torch.manual_seed(0)
    centers = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    y = torch.randint(0, 3, (300,))
    x = centers[y] + 0.5 * torch.randn(300, 2)
    net = MonoForwardNet(2, [16, 16], 3)
    opts = make_optimizers(net, 0.01)
    for _ in range(20):
        for i in range(0, 300, 50):
            train_step(net, opts, x[i:i + 50], y[i:i + 50])
    assert float((predict(net, x) == y).float().mean()) > 0.95
