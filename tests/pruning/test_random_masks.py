"""Random masks fixed before training: ERK allocation, exact per-layer counts, masked weights never move."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.pruning.random_masks import FixedMask, erk_densities, random_masks
from zoo.training import MLP


def test_erk_densities_by_hand():
    # Linear shapes (out, in): ER score (n_in + n_out) / (n_in n_out)
    shapes = [torch.Size([32, 64]), torch.Size([32, 32]), torch.Size([10, 32])]
    d = erk_densities(shapes, 0.9)
    scores = [96 / 2048, 64 / 1024, 42 / 320]
    sizes = [2048, 1024, 320]
    eps = 0.1 * sum(sizes) / sum(s * n for s, n in zip(scores, sizes))
    assert d == pytest.approx([eps * s for s in scores])
    assert sum(x * n for x, n in zip(d, sizes)) == pytest.approx(0.1 * sum(sizes))
    # smaller layers are denser (ER), not uniform
    assert d[2] > d[1] > d[0]


def test_erk_caps_dense_layers_and_keeps_the_budget():
    shapes = [torch.Size([256, 64]), torch.Size([256, 256]), torch.Size([10, 256])]
    d = erk_densities(shapes, 0.5)
    sizes = [s.numel() for s in shapes]
    assert max(d) <= 1.0 and d[2] == 1.0  # the classifier's score would exceed 1: made dense
    assert sum(x * n for x, n in zip(d, sizes)) == pytest.approx(0.5 * sum(sizes))
    # the rest re-solved with one scale: densities proportional to the ER scores
    r = [sum(s) / s.numel() for s in shapes[:2]]
    assert d[0] / d[1] == pytest.approx(r[0] / r[1])


def test_random_masks_exact_counts_and_uniform_option():
    torch.manual_seed(0)
    model = MLP(64, [128, 128], 10)
    masks = random_masks(model, 0.8, "uniform")
    for (name, m) in masks.items():
        assert int(m.sum()) == round(0.2 * m.numel()), name
    erk = random_masks(model, 0.8, "erk")
    kept = sum(int(m.sum()) for m in erk.values())
    assert abs(kept - 0.2 * sum(m.numel() for m in erk.values())) <= len(erk)
    assert int(erk["2"].sum()) != int(masks["2"].sum())  # the allocation option matters


def test_fixed_mask_keeps_pruned_weights_zero_under_adam():
    torch.manual_seed(0)
    model = MLP(16, [32], 4)
    fm = FixedMask(model, random_masks(model, 0.9))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(20):
        x, y = torch.randn(32, 16), torch.randint(0, 4, (32,))
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        fm.mask_grads()
        opt.step()
    # without the final apply(): gradient masking alone must keep pruned weights at exactly zero
    for w, m in fm.pairs:
        assert torch.all(w[m == 0] == 0)
        assert (w[m == 1] != 0).float().mean() > 0.99
    assert not torch.equal(before["0.weight"], model[0].weight)
    assert fm.density() == pytest.approx(0.1, abs=0.01)
