"""Wiring of random_search_sparse_baseline: node masks shrink the export; search picks the lowest initial loss."""

from __future__ import annotations

import torch

from tests.experiments.budgets import quick_run_metrics
from zoo.experiments.random_search_sparse_baseline import init_loss
from zoo.pruning.random_masks import ParamMask, random_node_masks
from zoo.training import MLP


def test_quick_run_exported_models_are_shrunk(tmp_path):
    m = quick_run_metrics("random_search_sparse_baseline", tmp_path, workers=1)
    for a in ("random_s75", "search_s75", "random_s90", "search_s90"):
        assert m[a]["export_gap"][0] < 1e-4
        assert m[a]["params"][0] < m["dense"]["params"][0] and m[a]["bytes"][0] < m["dense"]["bytes"][0]
    # 32-32 parent at 75%: 8 units per hidden layer survive -> 64*8+8 + 8*8+8 + 8*10+10 parameters
    assert m["random_s75"]["params"][0] == 64 * 8 + 8 + 8 * 8 + 8 + 8 * 10 + 10


def test_node_masks_and_init_loss():
    torch.manual_seed(0)
    model = MLP(10, [20, 20], 3)
    masks = random_node_masks(model, 0.75)
    assert int((masks["0.bias"] == 0).sum()) == 15 and int((masks["2.bias"] == 0).sum()) == 15
    assert int(masks["4.bias"].sum()) == 3  # classifier units kept
    dropped = (masks["0.bias"] == 0).nonzero().squeeze(1)
    assert torch.all(masks["2.weight"][:, dropped] == 0)
    x, y = torch.randn(50, 10), torch.randint(0, 3, (50,))
    before = [p.detach().clone() for p in model.parameters()]
    loss = init_loss(model, masks, x, y)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # model unchanged
    ParamMask(model, masks)
    assert abs(loss - float(torch.nn.functional.cross_entropy(model(x), y))) < 1e-6
