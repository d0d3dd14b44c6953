"""UDFC's closed-form next-layer compensation: exact where the linear assumption holds, optimal under its prior."""

from __future__ import annotations

import copy

import torch
from torch import nn

from zoo.pruning.data_free_compensation import compensate_pair, compensation_matrix, compress_mlp, keep_by_l1


def _pair(seed: int = 0, d: int = 12, n: int = 8, m: int = 5) -> tuple[nn.Linear, nn.Linear]:
    g = torch.Generator().manual_seed(seed)
    a, b = nn.Linear(d, n), nn.Linear(n, m)
    with torch.no_grad():
        for p in (*a.parameters(), *b.parameters()):
            p.copy_(torch.randn(p.shape, generator=g))
    return a, b


def test_pruned_linear_combination_is_rebuilt_exactly() -> None:
    # rows 6, 7 are small linear combinations of kept rows (weights and biases): pruning them
    # (the lowest L1 norms) and compensating reproduces the linear chain exactly
    a, b = _pair()
    with torch.no_grad():
        a.weight[6] = 0.05 * a.weight[0] - 0.03 * a.weight[1]
        a.bias[6] = 0.05 * a.bias[0] - 0.03 * a.bias[1]
        a.weight[7] = 0.04 * a.weight[2] + 0.02 * a.weight[3]
        a.bias[7] = 0.04 * a.bias[2] + 0.02 * a.bias[3]
    x = torch.randn(64, 12)
    ref = b(a(x))
    a1, b1 = copy.deepcopy(a), copy.deepcopy(b)
    keep = compensate_pair(a1, b1, 0.25, None, compensate=True, ridge=0.0)
    assert sorted(keep.tolist()) == [0, 1, 2, 3, 4, 5]
    torch.testing.assert_close(b1(a1(x)), ref, atol=1e-4, rtol=1e-4)
    a2, b2 = copy.deepcopy(a), copy.deepcopy(b)
    compensate_pair(a2, b2, 0.25, None, compensate=False)
    assert (b2(a2(x)) - ref).abs().max() > 1e-2  # without compensation the information is lost


def test_positive_copy_survives_relu() -> None:
    # a pruned neuron that is a positive multiple of a kept one is rebuilt exactly through the ReLU
    a, b = _pair(1)
    with torch.no_grad():
        a.weight[7] = 0.1 * a.weight[0]
        a.bias[7] = 0.1 * a.bias[0]
    model = nn.Sequential(a, nn.ReLU(), b)
    x = torch.randn(64, 12)
    ref = model(x)
    compress_mlp([a, b], ratio=1 / 8, bits=None, compensate=True, ridge=0.0)
    assert a.weight[7].abs().sum() == 0 and b.weight[:, 7].abs().sum() == 0
    torch.testing.assert_close(model(x), ref, atol=1e-4, rtol=1e-4)


def test_no_compression_is_identity() -> None:
    a, b = _pair(2)
    w_a, w_b = a.weight.detach().clone(), b.weight.detach().clone()
    compensate_pair(a, b, 0.0, None, compensate=True, ridge=0.0)
    torch.testing.assert_close(a.weight, w_a)
    torch.testing.assert_close(b.weight, w_b, atol=1e-5, rtol=1e-5)


def _objective(v: torch.Tensor, a: torch.Tensor, a_hat: torch.Tensor, s: torch.Tensor, c: torch.Tensor) -> float:
    r = v @ (a - s @ a_hat)
    return float(torch.trace(r @ c @ r.T))


def test_closed_form_minimises_the_expected_next_layer_error() -> None:
    torch.manual_seed(0)
    a, a_hat = torch.randn(10, 7).double(), torch.randn(6, 7).double()
    v = torch.randn(4, 10).double()
    c = torch.diag(torch.rand(7).double() + 0.5)
    s = compensation_matrix(a, a_hat, c, ridge=0.0)
    best = _objective(v, a, a_hat, s, c)
    for _ in range(20):
        assert _objective(v, a, a_hat, s + 1e-3 * torch.randn_like(s), c) > best
    # and it beats doing nothing (keeping the columns of the surviving channels)
    assert best < _objective(v, a, a_hat, torch.zeros_like(s), c)


def test_quantised_channel_scale_is_the_1d_least_squares() -> None:
    torch.manual_seed(1)
    a = torch.randn(5, 9).double()
    a_hat = a + 0.05 * torch.randn(5, 9).double()
    keep = torch.arange(5)
    s = compensation_matrix(a, a_hat, None, ridge=0.0, keep=keep)
    want = (a * a_hat).sum(1) / (a_hat * a_hat).sum(1)
    torch.testing.assert_close(s, torch.diag(want))


def test_compress_mlp_quantises_and_shrinks() -> None:
    torch.manual_seed(3)
    layers = [nn.Linear(20, 16), nn.Linear(16, 8), nn.Linear(8, 3)]
    kept = compress_mlp(layers, ratio=0.5, bits=4)
    assert [k.numel() for k in kept] == [8, 4]
    for layer in layers:
        rows = layer.weight.detach()
        live = rows[rows.abs().sum(1) > 0]
        scale = live.abs().amax(1, keepdim=True) / 7
        codes = live / scale
        torch.testing.assert_close(codes, codes.round(), atol=1e-4, rtol=0)  # 4-bit grid per row
    assert (layers[0].weight.abs().sum(1) > 0).sum() == 8
    assert (layers[1].weight[:, layers[0].weight.abs().sum(1) == 0] == 0).all()


def test_keep_by_l1() -> None:
    w = torch.tensor([[1.0, 1.0], [0.1, 0.0], [3.0, 0.0], [0.0, 0.2]])
    assert keep_by_l1(w, 0.5).tolist() == [0, 2]


def test_next_layer_matches_an_independent_least_squares() -> None:
    # reference: numpy lstsq of each pruned augmented row [w, b] (inputs scaled by sqrt(input_var),
    # bias coordinate by 1) on the kept rows; the next layer's kept columns must be V S
    import numpy as np

    a, b = _pair(4, d=6, n=8)
    var = 2.0
    aug = torch.cat([a.weight.detach() * var ** 0.5, a.bias.detach()[:, None]], 1).double().numpy()
    v = b.weight.detach().double().numpy()
    keep = compensate_pair(a, b, 0.5, None, compensate=True, input_var=var, ridge=0.0).numpy()
    pruned = np.setdiff1d(np.arange(8), keep)
    s = np.zeros((8, keep.size))
    s[keep, np.arange(keep.size)] = 1.0
    s[pruned] = np.linalg.lstsq(aug[keep].T, aug[pruned].T, rcond=None)[0].T
    np.testing.assert_allclose(b.weight.detach().double().numpy()[:, keep], v @ s, atol=1e-4)
