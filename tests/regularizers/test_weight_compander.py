"""Weight compander: the function, its inverse (the shared init), the gradient shaping, the options."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from zoo.regularizers.weight_compander import (WeightCompander, apply_weight_compander, compand,
                                               compander_layers, effective_weights)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))


def test_compander_on_hand_values() -> None:
    v = torch.tensor([-1.0, 0.0, 0.25, 1.0])
    # alpha * arctan(beta * v), alpha 0.5, beta 2: arctan(2) = 1.1071487, arctan(0.5) = 0.4636476
    want = torch.tensor([-0.5 * 1.1071487, 0.0, 0.5 * 0.4636476, 0.5 * 1.1071487])
    assert torch.allclose(compand(v, 0.5, 2.0), want, atol=1e-6)
    assert torch.allclose(WeightCompander(0.5, 2.0)(v), want, atol=1e-6)


def test_magnitude_is_capped_and_the_function_is_odd_and_monotone() -> None:
    f = WeightCompander(0.2, 10.0)
    v = torch.linspace(-100, 100, 2001)
    w = f(v)
    assert float(w.abs().max()) < 0.2 * math.pi / 2 == pytest.approx(f.cap)
    assert torch.allclose(f(-v), -w)
    assert bool((w[1:] > w[:-1]).all())


def test_gradient_is_largest_near_zero() -> None:
    """dw/dv = alpha*beta / (1 + beta^2 v^2): near-zero weights move fastest, saturated ones barely."""
    f = WeightCompander(0.2, 10.0)
    v = torch.tensor([0.0, 0.1, 1.0], requires_grad=True)
    f(v).sum().backward()
    assert torch.allclose(v.grad, torch.tensor([2.0, 2.0 / 2.0, 2.0 / 101.0]), atol=1e-6)


def test_applying_keeps_the_initial_function_and_only_reparametrises_weights() -> None:
    net = _net()
    x = torch.randn(7, 5)
    w0 = [m.weight.detach().clone() for m in net if isinstance(m, nn.Linear)]
    y0 = net(x).detach()
    apply_weight_compander(net, alpha=0.5, beta=4.0)
    assert all(parametrize.is_parametrized(m, "weight") for m in net if isinstance(m, nn.Linear))
    assert not any(parametrize.is_parametrized(m, "bias") for m in net if isinstance(m, nn.Linear))
    for a, b in zip(w0, effective_weights(net), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(net(x), y0, atol=1e-6)
    # the stored parameter is v = f^-1(w0), not w0 itself
    v = net[0].parametrizations.weight.original
    assert torch.allclose(v, torch.tan(w0[0] / 0.5) / 4.0, atol=1e-6)
    assert not torch.allclose(v, w0[0])


def test_training_acts_through_the_compander() -> None:
    net = apply_weight_compander(_net(), alpha=0.5, beta=4.0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    for _ in range(200):
        opt.zero_grad()
        (10.0 * nn.functional.cross_entropy(net(x), y)).backward()
        opt.step()
    # whatever the optimizer did to v, the weights the layers use stay under the cap
    assert all(float(w.abs().max()) < 0.5 * math.pi / 2 for w in effective_weights(net))


def test_initial_weights_beyond_the_cap_are_clipped_and_counted() -> None:
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.1, 5.0]]))
    apply_weight_compander(lin, alpha=1.0, beta=1.0)
    (c,) = compander_layers(lin)
    assert c.clipped == 1
    assert float(lin.weight[0, 0]) == pytest.approx(0.1, abs=1e-6)
    assert float(lin.weight[0, 1]) == pytest.approx(0.999 * math.pi / 2, rel=1e-5)


def test_learnable_alpha_beta_are_parameters_that_train() -> None:
    net = apply_weight_compander(_net(), alpha=0.5, beta=4.0, learnable=True)
    names = [n for n, _ in net.named_parameters()]
    assert sum("log_alpha" in n for n in names) == 2 and sum("log_beta" in n for n in names) == 2
    fixed = apply_weight_compander(_net(), alpha=0.5, beta=4.0)
    assert not any("log_" in n for n, _ in fixed.named_parameters())
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    nn.functional.cross_entropy(net(x), y).backward()
    for c in compander_layers(net):
        assert c.log_alpha.grad is not None and float(c.log_alpha.grad.abs()) > 0
        assert c.log_beta.grad is not None and float(c.log_beta.grad.abs()) > 0
    assert float(compander_layers(net)[0].alpha) == pytest.approx(0.5)


def test_invalid_options_raise() -> None:
    with pytest.raises(ValueError, match="positive"):
        WeightCompander(0.0, 1.0)
    with pytest.raises(ValueError, match="no .* layer"):
        apply_weight_compander(nn.Sequential(nn.ReLU()))
