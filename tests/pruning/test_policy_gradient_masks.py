"""Policy-gradient Bernoulli channel masks: unbiased score-function gradient, budget projection, learned masks."""

from __future__ import annotations

import torch

from zoo.compress import export
from zoo.pruning.policy_gradient_masks import PolicyGradientMasks, project_budget, reinforce_gradient
from zoo.training import MLP


def test_projection_meets_the_budget_and_box() -> None:
    s = torch.tensor([0.9, 0.95, 0.2, -0.3, 1.4])
    p = project_budget(s, 2.0)
    assert abs(float(p.sum()) - 2.0) < 1e-4 and float(p.min()) >= 1e-3 and float(p.max()) <= 1 - 1e-3
    o = s.argsort()
    assert bool((p[o][1:] >= p[o][:-1]).all())  # order kept (up to ties at the box)


def test_reinforce_matches_the_exact_gradient() -> None:
    """E[L(m)] for L(m) = a.m is a.s: the estimator's mean is a."""
    g = torch.Generator().manual_seed(0)
    s = torch.tensor([0.3, 0.6, 0.8])
    a = torch.tensor([1.0, -2.0, 0.5])
    masks = (torch.rand(200000, 3, generator=g) < s).float()
    est = reinforce_gradient(s, masks, masks @ a)
    assert torch.allclose(est, a, atol=0.05), est


def test_masks_learn_to_keep_the_units_that_matter() -> None:
    torch.manual_seed(0)
    model = MLP(4, [8], 2)
    with torch.no_grad():
        model[0].weight.zero_(); model[0].bias.zero_()
        model[0].weight[:2, 0] = torch.tensor([3.0, -3.0])
        model[0].weight[2:, 1:] = 0.1 * torch.randn(6, 3)
        model[2].weight.copy_(0.1 * torch.randn(2, 8))
        model[2].weight[:, :2] = torch.tensor([[-3.0, 3.0], [3.0, -3.0]])
    x = torch.randn(512, 4)
    y = (x[:, 0] > 0).long()
    pg = PolicyGradientMasks(model, keep=0.25, allocation="layer")
    pg.fit(x, y, iterations=150, samples=8, lr=0.05, batch=256, generator=torch.Generator().manual_seed(0))
    assert pg.final_mask()[:2].tolist() == [1.0, 1.0]
    pg.harden()
    ex = export(model.eval())
    assert torch.allclose(ex(x), model(x), atol=1e-5)
    assert ex[0].weight.shape[0] == 2
