"""L1-norm channel pruning: the scores, the masks, the harden contract, and torch-pruning as oracle."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from zoo.compress import export
from zoo.pruning.l1_channel import L1ChannelPruning, harden_l1_channel, l1_channel_mask, l1_channel_scores
from zoo.training import MLP, SmallCNN


def _layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def test_scores_are_l1_norms_of_rows_not_squared_l2():
    w = torch.tensor([[3.0, 0.0], [2.0, 2.0], [-1.0, -1.5]])
    assert torch.equal(l1_channel_scores(w), torch.tensor([3.0, 4.0, 2.5]))
    # L2 would rank row 0 (9) above row 1 (8): L1 removes row 2 then row 0
    assert torch.equal(l1_channel_mask(w, 2 / 3), torch.tensor([0.0, 1.0, 0.0]))


def test_pruning_zeroes_rows_and_biases_and_spares_the_classifier():
    torch.manual_seed(0)
    model = MLP(16, [12, 8], 4)
    L1ChannelPruning(model, 0.5)
    harden_l1_channel(model)
    first, second, last = _layers(model)
    for layer, n in ((first, 12), (second, 8)):
        dead = (layer.weight == 0).all(1)
        assert int(dead.sum()) == n // 2
        assert bool((layer.bias[dead] == 0).all())
    assert not bool((last.weight == 0).all(1).any())
    assert not any(isinstance(m, nn.Module) and hasattr(m, "parametrizations") for m in _layers(model))


def test_mask_holds_pruned_channels_at_zero_during_training():
    torch.manual_seed(0)
    model = MLP(16, [12], 4)
    L1ChannelPruning(model, 0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(torch.randn(8, 16)), torch.randint(0, 4, (8,))).backward()
        opt.step()
    w = _layers(model)[0].weight
    assert int((w == 0).all(1).sum()) == 6


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_matches_torch_pruning_magnitude_pruner_with_l1_importance(kind):
    tp = pytest.importorskip("torch_pruning")
    torch.manual_seed(0)
    model, ex = ((MLP(64, [30, 20], 10), torch.randn(2, 64)) if kind == "mlp"
                 else (SmallCNN(1, 10, 8, 8), torch.randn(2, 1, 8, 8)))
    ref = copy.deepcopy(model)
    keeps = [l1_channel_mask(layer.weight, 0.5).bool() for layer in _layers(model)[:-1]]
    # "first": the importance of a channel is its own filter's L1 norm (Li et al.), not pooled over the group
    imp = tp.importance.MagnitudeImportance(p=1, group_reduction="first")
    tp.pruner.MagnitudePruner(ref, ex, importance=imp, pruning_ratio=0.5, ignored_layers=[_layers(ref)[-1]]).step()
    # ours, exported: the dead rows physically removed, as torch-pruning removes them
    L1ChannelPruning(model, 0.5)
    ours = export(harden_l1_channel(model))
    for a, b in zip(_layers(ours), _layers(ref)):
        assert a.weight.shape == b.weight.shape
        torch.testing.assert_close(a.weight, b.weight)
    x = torch.randn(5, *ex.shape[1:])
    torch.testing.assert_close(ours(x), ref.eval()(x), rtol=1e-5, atol=1e-5)
    assert [int(k.sum()) for k in keeps] == [b.weight.shape[0] for b in _layers(ref)[:-1]]
