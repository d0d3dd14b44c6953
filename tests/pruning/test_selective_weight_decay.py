"""Selective weight decay: only the least relevant weights decay."""

import torch
from torch import nn

from zoo.pruning.selective_weight_decay import SelectiveWeightDecay, irrelevant_mask


def test_irrelevant_mask_is_the_lowest_taylor_quantile():
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    g = torch.tensor([4.0, 0.1, 1.0, 0.0])  # |w g| = 4, 0.2, 3, 0
    assert irrelevant_mask(w, g, 0.5).tolist() == [False, True, False, True]
    assert irrelevant_mask(w, g, 0.5, relevance="grad").tolist() == [False, True, False, True]
    assert not irrelevant_mask(w, g, 0.0).any()


def test_step_decays_only_the_irrelevant_weights():
    lin = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    lin.weight.grad = torch.tensor([[4.0, 0.1, 1.0, 0.0]])
    SelectiveWeightDecay(lin, lmbda=0.5, quantile=0.5).step()
    assert torch.allclose(lin.weight, torch.tensor([[1.0, 1.0, 3.0, 2.0]]))
