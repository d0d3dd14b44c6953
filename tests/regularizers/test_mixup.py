"""MixUp: mixing, the mixed cross-entropy, the lambda sampler."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.regularizers.mixup import mix, mixup_cross_entropy, mixup_loss, sample_lambda


def test_mix_on_hand_values_scalar_and_per_example() -> None:
    x = torch.tensor([[0.0, 2.0], [4.0, 6.0]])
    perm = torch.tensor([1, 0])
    assert torch.allclose(mix(x, 0.25, perm), torch.tensor([[3.0, 5.0], [1.0, 3.0]]))
    assert torch.allclose(mix(x, torch.tensor([1.0, 0.5]), perm), torch.tensor([[0.0, 2.0], [2.0, 4.0]]))
    img = torch.rand(3, 1, 2, 2)
    lam = torch.tensor([0.1, 0.5, 0.9])
    p = torch.tensor([2, 0, 1])
    assert torch.allclose(mix(img, lam, p)[2], 0.9 * img[2] + 0.1 * img[1])


def test_mixed_cross_entropy_is_cross_entropy_against_the_mixed_target() -> None:
    torch.manual_seed(0)
    logits = torch.randn(5, 4)
    y, y2 = torch.tensor([0, 1, 2, 3, 0]), torch.tensor([1, 1, 0, 2, 3])
    lam = torch.tensor([0.3, 1.0, 0.0, 0.5, 0.8])
    soft = lam[:, None] * F.one_hot(y, 4) + (1 - lam[:, None]) * F.one_hot(y2, 4)
    assert torch.allclose(mixup_cross_entropy(logits, y, y2, lam), F.cross_entropy(logits, soft.float()))
    assert torch.allclose(mixup_cross_entropy(logits, y, y2, 1.0), F.cross_entropy(logits, y))


def test_lambda_sampler_is_beta_and_seeded() -> None:
    g = torch.Generator().manual_seed(0)
    u = sample_lambda(1.0, g, (20000,))
    assert float(u.min()) >= 0.0 and float(u.max()) <= 1.0
    assert float(u.mean()) == pytest.approx(0.5, abs=0.01)
    assert float(u.var()) == pytest.approx(1 / 12, abs=0.003)  # Beta(1, 1) = U(0, 1)
    b = sample_lambda(0.2, torch.Generator().manual_seed(0), (20000,))
    assert float(((b < 0.1) | (b > 0.9)).double().mean()) > 0.6  # U-shaped for small alpha
    assert float(b.var()) == pytest.approx(0.25 / (2 * 0.2 + 1), abs=0.01)
    assert torch.equal(sample_lambda(1.0, torch.Generator().manual_seed(3), (5,)),
                       sample_lambda(1.0, torch.Generator().manual_seed(3), (5,)))
    with pytest.raises(ValueError):
        sample_lambda(0.0)


def test_mixup_loss_trains_on_mixed_inputs() -> None:
    torch.manual_seed(0)
    seen = []
    net = nn.Linear(3, 2)
    x, y = torch.rand(6, 3), torch.tensor([0, 1, 0, 1, 0, 1])

    def model(inp):
        seen.append(inp)
        return net(inp)

    g = torch.Generator().manual_seed(1)
    loss = mixup_loss(model, x, y, 1.0, generator=g, per_example=True)
    g = torch.Generator().manual_seed(1)
    lam = sample_lambda(1.0, g, (6,))
    perm = torch.randperm(6, generator=g)
    assert torch.allclose(seen[0], mix(x, lam, perm))
    assert torch.allclose(loss, mixup_cross_entropy(net(mix(x, lam, perm)), y, y[perm], lam))
