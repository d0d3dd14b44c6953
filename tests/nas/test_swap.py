"""SWAP-Score and NWOT on networks whose activation patterns are known by construction."""

import itertools
import math

import pytest
import torch
from torch import nn

from zoo.nas.nwot import hamming_kernel, nwot_score
from zoo.nas.swap import activation_signs, swap_regulariser, swap_score


def _net(weight: torch.Tensor) -> nn.Module:
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(weight)
    return nn.Sequential(lin, nn.ReLU(), nn.Linear(weight.shape[0], 2))


# Unit n copies input coordinate n: its sample-wise pattern is column n of (x > 0).
X = torch.tensor([[1.0, 1.0, -1.0, 1.0],
                  [1.0, 1.0, 1.0, -1.0],
                  [-1.0, -1.0, 1.0, 1.0]])


def test_swap_counts_distinct_unit_patterns_over_the_batch():
    model = _net(torch.eye(4))
    # columns of X>0: (1,1,0), (1,1,0), (0,1,1), (1,0,1): three distinct unit patterns,
    # while the three samples' codes (rows) are all distinct too -> use a batch where they differ
    assert swap_score(model, X) == 3.0
    # two samples with the same code: 2 distinct sample codes, but 4 units with 3 distinct patterns
    x2 = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])
    # columns: (1,1,1), (0,0,1), (1,1,0), (0,0,0) -> 4 distinct
    assert swap_score(model, x2) == 4.0


def test_swap_brute_force_random_relu_net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.randn(4, 5)
    h1 = torch.relu(model[0](x))
    h2 = torch.relu(model[2](h1))
    units = torch.cat([h1, h2], 1) > 0
    expected = len({tuple(units[:, n].tolist()) for n in range(units.shape[1])})
    assert swap_score(model, x) == float(expected)
    assert activation_signs(model, x).shape == (4, 13)


def test_swap_regularised():
    model = _net(torch.eye(4))
    n = sum(p.numel() for p in model.parameters())
    assert swap_score(model, X, mu=n, sigma=1.0) == 3.0
    assert swap_score(model, X, mu=n + 10, sigma=100.0) == pytest.approx(3.0 * math.exp(-1.0))
    assert swap_regulariser(5, 3, 2) == pytest.approx(math.exp(-2.0))
    with pytest.raises(ValueError):
        swap_score(model, X, mu=1.0)


def test_nwot_equals_log_det_of_brute_force_hamming_kernel():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 2))
    x = torch.randn(5, 6)
    codes = activation_signs(model, x)
    k = torch.zeros(5, 5, dtype=torch.float64)
    for i, j in itertools.product(range(5), range(5)):
        k[i, j] = codes.shape[1] - (codes[i] != codes[j]).sum()
    assert torch.equal(hamming_kernel(codes), k)
    if torch.linalg.det(k) > 0:
        assert nwot_score(model, x) == pytest.approx(float(torch.logdet(k)))


def test_nwot_singular_kernel_is_finite_and_lower():
    model = _net(torch.eye(4))
    x = torch.cat([X, X[:1]])  # a repeated sample makes K_H singular
    assert math.isfinite(nwot_score(model, x))
    assert nwot_score(model, x) < nwot_score(model, X) + 5


def test_needs_relu():
    with pytest.raises(ValueError):
        swap_score(nn.Linear(3, 2), torch.randn(2, 3))
