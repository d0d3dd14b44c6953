"""Instant updates: the stale variant is back-propagation + SGD, the instant one follows its
equations by hand, differs at order lr^2, and torch's grad hooks would not give it."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from zoo.learning_rules.instant_update import instant_update_step
from zoo.training import MLP


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(9, 6, generator=g), torch.randint(0, 4, (9,), generator=g)


def _backprop_sgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


@pytest.mark.parametrize("hidden", [[5], [5, 3]])
def test_stale_variant_is_backprop_with_sgd(hidden: list[int]) -> None:
    torch.manual_seed(0)
    a = MLP(6, hidden, 4)
    b = copy.deepcopy(a)
    for s in range(3):
        x, y = _data(s)
        la = instant_update_step(a, x, y, 0.5, through="stale")
        lb = _backprop_sgd(b, x, y, 0.5)
        assert la == pytest.approx(lb, rel=1e-6)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_instant_variant_by_hand() -> None:
    """Two linear layers: the hidden layer's error goes through the top layer's updated weights."""
    torch.manual_seed(0)
    m = MLP(6, [5], 4)
    w1, b1, w2, b2 = (p.detach().clone() for p in m.parameters())
    x, y = _data()
    lr = 0.7
    z1 = x @ w1.t() + b1
    a1 = torch.relu(z1)
    z2 = a1 @ w2.t() + b2
    d2 = (z2.softmax(1) - F.one_hot(y, 4).float()) / 9
    w2n, b2n = w2 - lr * d2.t() @ a1, b2 - lr * d2.sum(0)
    d1 = (d2 @ w2n) * (z1 > 0).float()  # through the UPDATED W2
    w1n, b1n = w1 - lr * d1.t() @ x, b1 - lr * d1.sum(0)
    instant_update_step(m, x, y, lr)
    for p, e in zip(m.parameters(), (w1n, b1n, w2n, b2n)):
        assert torch.allclose(p, e, atol=1e-6)


def test_departure_from_backprop_is_second_order_in_lr() -> None:
    x, y = _data()

    def gap(lr: float) -> float:
        torch.manual_seed(0)
        a = MLP(6, [5, 5], 4)
        b = copy.deepcopy(a)
        instant_update_step(a, x, y, lr)
        instant_update_step(b, x, y, lr, through="stale")
        assert torch.equal(a[-1].weight, b[-1].weight), "the top layer's step is back-propagation's"
        return float((a[0].weight - b[0].weight).norm())

    g1, g2 = gap(0.2), gap(0.1)
    assert g1 > 0 and g1 / g2 == pytest.approx(4.0, rel=0.05)


def test_post_accumulate_grad_hooks_give_plain_backprop() -> None:
    """Updating inside autograd's backward (grad hooks) does NOT change lower layers' errors."""
    torch.manual_seed(0)
    a = MLP(6, [5, 5], 4)
    b = copy.deepcopy(a)
    lr = 0.5
    def step_now(p: torch.Tensor) -> None:
        with torch.no_grad():
            p.sub_(lr * p.grad)
        p.grad = None

    for p in a.parameters():
        p.register_post_accumulate_grad_hook(step_now)
    x, y = _data()
    F.cross_entropy(a(x), y).backward()
    _backprop_sgd(b, x, y, lr)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_lowers_the_loss_and_rejects_other_layers() -> None:
    torch.manual_seed(0)
    m = MLP(6, [8], 4)
    x, y = _data()
    first = instant_update_step(m, x, y, 0.5)
    for _ in range(50):
        last = instant_update_step(m, x, y, 0.5)
    assert last < 0.5 * first
    with pytest.raises(TypeError, match="nn.Linear and nn.ReLU"):
        instant_update_step(torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh()), x, y, 0.1)
    with pytest.raises(ValueError, match="through"):
        instant_update_step(m, x, y, 0.1, through="later")  # type: ignore[arg-type]
