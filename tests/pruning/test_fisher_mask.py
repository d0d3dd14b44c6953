"""FISH: the empirical Fisher diagonal is the mean of squared per-example gradients; masks are exact."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo.pruning.fisher_mask import GradMask, bias_mask, fisher_diagonal, random_param_mask, top_k_mask
from zoo.training import MLP


def test_fisher_diagonal_matches_a_per_example_loop():
    torch.manual_seed(0)
    model = MLP(6, [5], 3)
    x, y = torch.randn(20, 6), torch.randint(0, 3, (20,))
    f = fisher_diagonal(model, x, y, n_samples=None, chunk=7)
    ref = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(20):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        for n, p in model.named_parameters():
            ref[n] += p.grad.pow(2) / 20
    for n in ref:
        torch.testing.assert_close(f[n], ref[n])
    # not the squared mean gradient
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    assert not torch.allclose(f["0.weight"], model[0].weight.grad.pow(2))


def test_masks_counts_and_top_k_ranking():
    torch.manual_seed(0)
    model = MLP(6, [5], 3)
    scores = {n: torch.rand_like(p) for n, p in model.named_parameters()}
    m = top_k_mask(scores, 7)
    assert sum(int(v.sum()) for v in m.values()) == 7
    kept = torch.cat([s[m[n] == 1] for n, s in scores.items()])
    dropped = torch.cat([s[m[n] == 0] for n, s in scores.items()])
    assert kept.min() > dropped.max()
    assert sum(int(v.sum()) for v in random_param_mask(model, 7).values()) == 7
    b = bias_mask(model)
    assert int(b["0.bias"].sum()) == 5 and int(b["0.weight"].sum()) == 0


def test_grad_mask_freezes_everything_outside_the_mask():
    torch.manual_seed(0)
    model = MLP(6, [5], 3)
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    gm = GradMask(model, top_k_mask(fisher_diagonal(model, x, y), 4))
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(10):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        gm()
        opt.step()
    moved = sum(int((p != start[n]).sum()) for n, p in model.named_parameters())
    assert moved == 4 == gm.trainable()
