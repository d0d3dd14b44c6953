"""Dynamic mask prediction: heatmap-mass targets, per-input masking, the decoupled predictor loss, the cost."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo.pruning.dynamic_mask_prediction import (DynamicMaskedMLP, MaskPredictor, expected_macs, heatmap_mass_targets,
                                                 predictor_loss)
from zoo.training import MLP


def test_targets_keep_the_fewest_units_holding_the_mass():
    act = torch.tensor([[2.0, 4.0, 1.0, 3.0]])  # total 10; 4 + 3 = 7 >= 6, 4 alone < 6
    assert heatmap_mass_targets(act, 0.6).tolist() == [[0.0, 1.0, 0.0, 1.0]]
    assert heatmap_mass_targets(act, 0.7).tolist() == [[0.0, 1.0, 0.0, 1.0]]  # exactly reached
    assert heatmap_mass_targets(act, 0.71).tolist() == [[1.0, 1.0, 0.0, 1.0]]
    assert heatmap_mass_targets(act, 0.01).tolist() == [[0.0, 1.0, 0.0, 0.0]]
    assert heatmap_mass_targets(torch.zeros(1, 3), 0.9).sum() == 1  # a dead input keeps one unit


def test_targets_are_minimal_per_input_and_use_feature_map_mass():
    torch.manual_seed(0)
    act = torch.relu(torch.randn(64, 40))
    for r in (0.3, 0.8, 0.95):
        t = heatmap_mass_targets(act, r)
        kept = (act * t).sum(1)
        smallest = torch.where(t > 0, act, torch.full_like(act, float("inf"))).min(1).values
        assert (kept >= r * act.sum(1) - 1e-5).all()
        assert (kept - smallest < r * act.sum(1)).all()  # dropping any kept unit falls short
    maps = torch.relu(torch.randn(8, 6, 5, 5))
    assert torch.equal(heatmap_mass_targets(maps, 0.8), heatmap_mass_targets(maps.sum((2, 3)), 0.8))


def _net(mass=0.5):
    torch.manual_seed(0)
    return DynamicMaskedMLP(MLP(12, [10, 6], 3), mass=mass, rank=4)


def test_predicted_mode_computes_only_the_units_the_predictor_keeps():
    net = _net()
    with torch.no_grad():
        for pred in net.predictors:
            pred.up.bias.zero_()
    x = torch.randn(5, 12)
    logits = [net.predictors[0](x)]
    out = net(x)
    lin = net.linears
    m1 = (logits[0] > 0).float()
    h1 = torch.relu(lin[0](x)) * m1
    m2 = (net.predictors[1](h1) > 0).float()
    h2 = torch.relu(lin[1](h1)) * m2
    assert torch.allclose(out, lin[2](h2))
    assert torch.equal(net.masks[0], m1) and torch.equal(net.masks[1], m2)
    assert 0 < m1.mean() < 1  # a real per-input mask, not all or nothing
    assert not torch.equal(m1[0], m1[1]) or not torch.equal(m1[1], m1[2])


def test_target_mode_applies_the_heatmap_mass_targets_and_dense_mode_none():
    net = _net()
    x = torch.randn(5, 12)
    net.mode = "target"
    net(x)
    assert torch.equal(net.masks[0], heatmap_mass_targets(torch.relu(net.linears[0](x)), 0.5))
    net.mode = "dense"
    dense = net(x)
    plain = net.linears[2](torch.relu(net.linears[1](torch.relu(net.linears[0](x)))))
    assert torch.allclose(dense, plain)


def test_mask_loss_is_bce_to_the_targets_and_trains_only_the_predictors():
    net = _net()
    x = torch.randn(7, 12)
    net(x)
    a1 = torch.relu(net.linears[0](x))
    t1 = heatmap_mass_targets(a1, 0.5)
    s1 = net.predictors[0](x)
    want = F.binary_cross_entropy(torch.sigmoid(s1), t1)
    assert net.mask_losses[0].item() == pytest.approx(want.item(), rel=1e-5)
    net.mask_loss().backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in net.linears.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.predictors.parameters())
    net.zero_grad()
    F.cross_entropy(net(x), torch.zeros(7, dtype=torch.long)).backward()  # the task loss
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in net.predictors.parameters())
    assert predictor_loss(torch.tensor([[10.0, -10.0]]), torch.tensor([[1.0, 0.0]])) < 1e-3


def test_training_the_predictor_learns_the_targets():
    torch.manual_seed(0)
    net = DynamicMaskedMLP(MLP(12, [10, 6], 3), mass=0.6, rank=8)
    x = torch.randn(256, 12)
    opt = torch.optim.Adam(net.predictors.parameters(), lr=0.03)

    def agreement():
        with torch.no_grad():
            net(x)
            pred = net.masks[0]
            net.mode = "target"
            net(x)
            net.mode = "predicted"
            return float((pred == net.masks[0]).float().mean())

    before = agreement()
    for _ in range(200):
        net(x)
        opt.zero_grad()
        net.mask_loss().backward()
        opt.step()
    assert agreement() > max(before, 0.85)


def test_svd_init_matches_the_layer_preactivation_at_full_rank():
    lin = torch.nn.Linear(9, 5)
    p = MaskPredictor(9, 5, rank=5)
    p.init_from(lin)
    x = torch.randn(4, 9)
    assert torch.allclose(p(x), lin(x), atol=1e-5)
    p2 = MaskPredictor(3, 5, rank=2)
    assert p2(torch.randn(2, 3, 4, 4)).shape == (2, 5)  # feature maps: global max pooling


def test_expected_macs_counts_kept_units_and_predictor_cost():
    net = _net()
    with torch.no_grad():
        for pred, keep in zip(net.predictors, ([1] * 4 + [0] * 6, [1, 1, 0, 0, 0, 0])):
            pred.down.weight.zero_()
            pred.up.weight.zero_()
            pred.up.bias.copy_(torch.tensor(keep, dtype=torch.float) * 2 - 1)
    c = expected_macs(net, torch.randn(3, 12))
    assert c["network_macs"] == 12 * 4 + 4 * 2 + 2 * 3
    assert c["predictor_macs"] == (12 * 4 + 4 * 10) + (4 * 4 + 4 * 6)
    assert c["macs"] == c["network_macs"] + c["predictor_macs"]
    assert c["kept"] == pytest.approx(6 / 16)
    assert c["dense_macs"] == 12 * 10 + 10 * 6 + 6 * 3
