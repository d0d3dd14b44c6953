"""OpenAI-ES estimator and ES iterative pruning."""

import torch
from torch import nn

from zoo.pruning.es_tickets import (ESConfig, ESState, centred_ranks, es_gradient, iterative_pruning, prune_mask,
                                    prune_scores, train_es)


def test_centred_ranks():
    assert torch.allclose(centred_ranks(torch.tensor([3.0, -1.0, 10.0])), torch.tensor([0.0, -0.5, 0.5]))


def test_es_gradient_estimates_a_linear_objective_direction():
    # utility u(theta) = c . theta (no shaping): E[g] = c exactly for antithetic sampling
    g = torch.Generator().manual_seed(0)
    c = torch.tensor([1.0, -2.0, 0.5])
    sigma = torch.full((3,), 0.1)
    eps = torch.randn(20000, 3, generator=g)
    up, un = (sigma * eps) @ c, (-sigma * eps) @ c
    est = es_gradient(eps, up, un, sigma)
    assert torch.allclose(est, c, atol=0.05)


def _task():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


def _acc(m, x, y):
    return float((m(x).argmax(1) == y).float().mean())


def test_train_es_learns_without_backprop_and_respects_the_mask():
    x, y = _task()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    before = _acc(model, x, y)
    n = sum(p.numel() for p in model.parameters())
    mask = torch.ones(n)
    mask[:10] = 0
    st = train_es(model, x, y, ESConfig(population=32, generations=150, lr=0.05, batch_size=128, sigma_lr=0.1),
                  torch.Generator().manual_seed(1), mask=mask)
    assert _acc(model, x, y) > max(before, 0.85)
    assert torch.all(model[0].weight.flatten()[:10] == 0)
    assert st.history[-1] < st.history[0]
    assert not torch.allclose(st.sigma, torch.full_like(st.sigma, 0.05))  # sigma adapted


def test_scores_and_masks():
    st = ESState(mu=torch.tensor([1.0, -3.0, 0.5, 2.0]), sigma=torch.tensor([1.0, 10.0, 0.1, 1.0]),
                 mask=torch.tensor([1.0, 1.0, 1.0, 0.0]))
    mag, snr = prune_scores(st, "magnitude"), prune_scores(st, "snr")
    assert prune_mask(mag, st.mask, 1 / 3).tolist() == [1, 1, 0, 0]   # drops |0.5|
    assert prune_mask(snr, st.mask, 1 / 3).tolist() == [1, 0, 1, 0]   # drops 3/10


def test_iterative_pruning_rewinds_and_sparsifies():
    x, y = _task()
    make = lambda: (torch.manual_seed(0), nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2)))[1]  # noqa: E731
    rows = iterative_pruning(make, x, y, ESConfig(population=16, generations=30, lr=0.05, batch_size=64), rounds=2,
                             rate=0.5, criterion="magnitude", seed=0, evaluate=lambda m: _acc(m, x, y))
    assert [round(r["sparsity"]) for r in rows] == [0, 50, 74]  # 66 weights: 33 kept, then 17
