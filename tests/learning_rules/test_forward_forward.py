"""Forward-Forward: the layer loss by hand, lock-step against fflib 0.3.0, layer locality, prediction.

``fflib`` declares ``torchvision<0.22`` (hence torch 2.6), so it is not in the ``[test]`` extra (it
would downgrade torch); install it with ``pip install --no-deps fflib==0.3.0`` to run the
differential test, which is skipped otherwise. Tolerance: 1e-6 absolute on the weights after
five lock-step Adam steps (float32; the two compute the same operations in the same order).
"""

from __future__ import annotations

import pytest
import torch

from zoo.learning_rules.forward_forward import (ForwardForwardNet, embed_label, goodness_per_label, layer_loss,
                                                make_optimizers, negative_labels, predict, train_step)


def test_layer_loss_by_hand() -> None:
    torch.manual_seed(0)
    net = ForwardForwardNet(4, [5], 3, threshold=1.5)
    layer = net.layers[0]
    xp, xn = torch.randn(6, 7), torch.randn(6, 7)

    def h(x: torch.Tensor) -> torch.Tensor:
        xd = x / (x.norm(dim=1, keepdim=True) + 1e-4)
        return torch.relu(xd @ layer.weight.t() + layer.bias)

    gp, gn = h(xp).pow(2).mean(1), h(xn).pow(2).mean(1)
    expected = torch.cat([torch.log1p(torch.exp(1.5 - gp)), torch.log1p(torch.exp(gn - 1.5))]).mean()
    assert float(layer_loss(layer, xp, xn, 1.5).detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


def test_layer_loss_cuts_the_graph_below_the_layer() -> None:
    net = ForwardForwardNet(4, [5], 3)
    xp, xn = torch.randn(6, 7, requires_grad=True), torch.randn(6, 7, requires_grad=True)
    layer_loss(net.layers[0], xp, xn, 2.0).backward()
    assert xp.grad is None and xn.grad is None and net.layers[0].weight.grad is not None


def test_label_embedding_and_negatives() -> None:
    x = torch.tensor([[0.5, -2.0, 1.0]])
    assert embed_label(x, torch.tensor([1]), 3).tolist() == [[0.5, -2.0, 1.0, 0.0, 2.0, 0.0]]
    y = torch.randint(0, 10, (5000,))
    yn = negative_labels(y, 10, torch.Generator().manual_seed(0))
    assert bool((yn != y).all()) and set(yn.tolist()) == set(range(10))


def test_matches_fflib_lock_step() -> None:
    ff_linear = pytest.importorskip("fflib.nn.ff_linear")
    ff_net = pytest.importorskip("fflib.nn.ff_net")
    torch.manual_seed(0)
    net = ForwardForwardNet(12, [9, 7], 4, threshold=2.0)
    opts = make_optimizers(net, 0.03)
    ref_layers = []
    for layer in net.layers:
        r = ff_linear.FFLinear(layer.in_features, layer.out_features, loss_threshold=2.0, lr=0.03)
        r.load_state_dict(layer.state_dict())
        r._init_utils(torch.optim.Adam)  # its optimizer over the loaded parameters
        ref_layers.append(r)
    ref = ff_net.FFNet(ref_layers, device=None)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        x, y = torch.rand(16, 12, generator=g), torch.randint(0, 4, (16,), generator=g)
        yn = negative_labels(y, 4, g)
        train_step(net, opts, x, y, y_neg=yn)
        ref.run_train_combined(embed_label(x, y, 4), embed_label(x, yn, 4))
    for ours, theirs in zip(net.layers, ref_layers):
        assert torch.allclose(ours.weight, theirs.weight, atol=1e-6, rtol=0)
        assert torch.allclose(ours.bias, theirs.bias, atol=1e-6, rtol=0)
        assert not torch.allclose(ours.weight, ForwardForwardNet(12, [9, 7], 4).layers[0].weight[: ours.weight.shape[0], : ours.weight.shape[1]])


def test_no_gradient_crosses_layers() -> None:
    """The first layer learns the same whether or not a second layer sits on it."""
    torch.manual_seed(0)
    one, two = ForwardForwardNet(6, [5], 3), ForwardForwardNet(6, [5, 4], 3)
    two.layers[0].load_state_dict(one.layers[0].state_dict())
    o1, o2 = make_optimizers(one, 0.01), make_optimizers(two, 0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x, y = torch.rand(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
        yn = negative_labels(y, 3, g)
        train_step(one, o1, x, y, y_neg=yn)
        train_step(two, o2, x, y, y_neg=yn)
    assert torch.equal(one.layers[0].weight, two.layers[0].weight)


def test_second_layer_sees_the_updated_first_layer() -> None:
    """fflib's order: layer l steps, then its *new* output feeds layer l + 1."""
    torch.manual_seed(0)
    net = ForwardForwardNet(6, [5, 4], 3)
    opts = make_optimizers(net, 0.1)
    x, y = torch.rand(8, 6), torch.randint(0, 3, (8,))
    yn = negative_labels(y, 3, torch.Generator().manual_seed(0))
    l1 = net.layers[1]
    seen = {}
    def hook(m: torch.nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen.setdefault("x", inp[0].clone())

    l1.register_forward_hook(hook)
    train_step(net, opts, x, y, y_neg=yn)
    with torch.no_grad():
        assert torch.allclose(seen["x"], net.layers[0](embed_label(x, y, 3)))


def test_prediction_is_the_label_of_highest_summed_goodness() -> None:
    torch.manual_seed(0)
    net = ForwardForwardNet(5, [6, 4], 3)
    x = torch.rand(10, 5)
    g = goodness_per_label(net, x)
    manual = []
    for c in range(3):
        h = embed_label(x, torch.full((10,), c), 3)
        tot = torch.zeros(10)
        for layer in net.layers:
            h = layer(h)
            tot = tot + h.pow(2).mean(1)
        manual.append(tot)
    assert torch.allclose(g, torch.stack(manual, 1).detach())
    assert torch.equal(predict(net, x), g.argmax(1))
    net.skip_first = True
    assert not torch.allclose(goodness_per_label(net, x), g)


def test_learns_a_toy_problem() -> None:
    torch.manual_seed(0)
    centers = torch.tensor([[3.0, 0.0, 0.5], [0.0, 3.0, 0.5], [0.5, 0.5, 3.0]])
    y = torch.randint(0, 3, (300,))
    x = (centers[y] + 0.3 * torch.randn(300, 3)).abs()
    net = ForwardForwardNet(3, [32], 3)
    opts = make_optimizers(net, 0.03)
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        for i in range(0, 300, 50):
            train_step(net, opts, x[i:i + 50], y[i:i + 50], g)
    assert float((predict(net, x) == y).float().mean()) > 0.9
