"""LOBSTER's shrinkage: insensitive weights decay, sensitive ones keep their value."""

import torch
from torch import nn

from zoo.pruning import GradualMagnitudePruning
from zoo.pruning.lobster import LOBSTER, insensitivity, raw_weight


def test_insensitivity_rescaled_and_clipped():
    g = torch.tensor([0.0, -1.0, 2.0, 4.0])
    assert torch.allclose(insensitivity(g, rescaled=True), torch.tensor([1.0, 0.75, 0.5, 0.0]))
    assert torch.allclose(insensitivity(g, rescaled=False), torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_step_shrinks_by_lambda_times_insensitivity():
    lin = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[2.0, 3.0]]))
    lin.weight.grad = torch.tensor([[0.0, 5.0]])  # first weight: no sensitivity, second: the maximum
    LOBSTER(lin, lmbda=0.1).step()
    assert torch.allclose(lin.weight, torch.tensor([[1.8, 3.0]]))


def test_step_acts_on_the_masked_layers_original_weight():
    model = nn.Sequential(nn.Linear(4, 3))
    GradualMagnitudePruning(model, 0.5, begin_step=0, end_step=1)
    w = raw_weight(model[0])
    before = w.detach().clone()
    model[0].weight.sum().backward()  # equal gradients: rescaled insensitivity 0 on unmasked weights
    w.grad = torch.zeros_like(w)
    LOBSTER(model, lmbda=0.5).step()
    assert torch.allclose(w, 0.5 * before)
