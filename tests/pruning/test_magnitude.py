"""Gradual magnitude pruning: Zhu & Gupta's cubic schedule, no regrowth, global ranking, exact masks."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from zoo.pruning import GradualMagnitudePruning, cubic_sparsity, harden_magnitude, sparsity_of


def test_cubic_schedule_exact_values():
    # s_t = s_f (1 - (1 - (t - t0)/(n dt))^3), s_f = 0.8, t0 = 10, n dt = 100
    assert cubic_sparsity(0, 0.8, 10, 110) == 0.0
    assert cubic_sparsity(10, 0.8, 10, 110) == pytest.approx(0.0)
    assert cubic_sparsity(20, 0.8, 10, 110) == pytest.approx(0.2168)  # 0.8 (1 - 0.9^3)
    assert cubic_sparsity(35, 0.8, 10, 110) == pytest.approx(0.4625)  # 0.8 (1 - 0.75^3)
    assert cubic_sparsity(60, 0.8, 10, 110) == pytest.approx(0.7)  # 0.8 (1 - 0.5^3): fast early ...
    assert cubic_sparsity(85, 0.8, 10, 110) == pytest.approx(0.7875)  # ... slow late: 0.8 (1 - 0.25^3)
    assert cubic_sparsity(110, 0.8, 10, 110) == 0.8
    assert cubic_sparsity(500, 0.8, 10, 110) == 0.8


def test_gmp_sparsity_follows_the_cubic_schedule():
    torch.manual_seed(0)
    layer = nn.Linear(20, 10)  # 200 weights
    gmp = GradualMagnitudePruning(layer, 0.8, begin_step=10, end_step=110, frequency=10, allocation="uniform")
    zeros = {}
    for step in range(0, 121):
        gmp.step(step)
        zeros[step] = int((layer.weight == 0).sum())
    assert zeros[9] == 0
    assert zeros[20] == round(0.2168 * 200) == 43
    assert zeros[25] == 43, "no pruning between pruning steps"
    assert zeros[35] == zeros[30] == round(0.8 * (1 - 0.8**3) * 200) == 78
    assert zeros[60] == round(0.7 * 200) == 140
    assert zeros[110] == zeros[120] == 160
    assert gmp.sparsity == 0.8


def test_pruned_weights_stay_pruned_after_optimizer_steps():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    gmp = GradualMagnitudePruning(model, 0.75, begin_step=0, end_step=40, frequency=10, allocation="uniform")
    opt = torch.optim.Adam(model.parameters(), lr=0.05)  # momentum keeps moving the stored values
    pruned_before: list[torch.Tensor] | None = None
    for step in range(60):
        gmp.step(step)
        layers = (model[0], model[2])
        if step % 10 == 0 and step <= 40:
            pruned_now = [layer.weight.detach() == 0 for layer in layers]
            if pruned_before is not None:
                for before, now in zip(pruned_before, pruned_now):
                    assert bool(now[before].all()), "a pruned weight came back"
            pruned_before = pruned_now
            # the stored values of pruned weights drift to large magnitudes: they still must not return
            with torch.no_grad():
                for layer, p in zip(layers, pruned_now):
                    orig = layer.parametrizations.weight.original
                    orig[p] = 10.0
        opt.zero_grad()
        model(torch.randn(8, 16)).square().mean().backward()
        opt.step()
        for layer, p in zip(layers, pruned_before):
            assert bool((layer.weight.detach()[p] == 0).all())
    harden_magnitude(model)
    for layer in (model[0], model[2]):
        assert sparsity_of(layer.weight) == pytest.approx(round(0.75 * layer.weight.numel()) / layer.weight.numel())
        assert float(layer.weight.detach().abs().max()) < 10.0, "drifted pruned values were not exported"


def test_pruned_weights_get_no_gradient():
    torch.manual_seed(0)
    layer = nn.Linear(8, 8)
    gmp = GradualMagnitudePruning(layer, 0.5, begin_step=0, end_step=0, frequency=1, allocation="uniform")
    gmp.step(0)
    layer(torch.randn(4, 8)).square().sum().backward()
    g = layer.parametrizations.weight.original.grad
    pruned = layer.weight.detach() == 0
    assert bool((g[pruned] == 0).all()) and bool((g[~pruned] != 0).any())


def _two_scale_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))
    with torch.no_grad():
        model[2].weight.mul_(5)
    return model


def test_gmp_global_ranking_gives_layers_different_sparsities():
    model = _two_scale_model()
    w = torch.cat([model[0].weight.detach().reshape(-1), model[2].weight.detach().reshape(-1)])
    gmp = GradualMagnitudePruning(model, 0.8, begin_step=0, end_step=1, allocation="global")
    gmp.prune_to(0.8)
    zeros = [int((model[i].weight == 0).sum()) for i in (0, 2)]
    assert zeros[0] > round(0.8 * 1024) > zeros[1]
    assert sum(zeros) == round(0.8 * 2048)
    # one global threshold: every pruned magnitude is at most every kept one, across layers
    eff = torch.cat([model[0].weight.detach().reshape(-1), model[2].weight.detach().reshape(-1)])
    assert float(w[eff == 0].abs().max()) <= float(w[eff != 0].abs().min())


def test_gmp_uniform_prunes_every_layer_to_the_target():
    model = _two_scale_model()
    gmp = GradualMagnitudePruning(model, 0.8, begin_step=0, end_step=1, allocation="uniform")
    gmp.prune_to(0.8)
    assert [int((model[i].weight == 0).sum()) for i in (0, 2)] == [round(0.8 * 1024)] * 2


def test_gmp_channel_prunes_whole_rows():
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 10, 3)
    gmp = GradualMagnitudePruning(layer, 0.3, begin_step=0, end_step=1, structure="channel")
    gmp.prune_to(0.3)
    harden_magnitude(layer)
    rows = layer.weight.reshape(10, -1)
    zero_rows = rows.abs().sum(1) == 0
    assert int(zero_rows.sum()) == 3 and bool((rows[~zero_rows] != 0).all())


def test_gmp_nm_keeps_n_per_group():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8))
    gmp = GradualMagnitudePruning(model, 0.0, begin_step=0, end_step=10, frequency=1, structure="1:4")
    for step in range(11):
        gmp.step(step)
    harden_magnitude(model)
    assert type(model[0]) is nn.Linear and not parametrize.is_parametrized(model[0])
    assert ((model[0].weight.reshape(8, -1, 4) != 0).sum(-1) == 1).all()


def test_harden_magnitude_exports_the_masked_values():
    torch.manual_seed(0)
    layer = nn.Linear(8, 4)
    raw = layer.weight.detach().clone()
    gmp = GradualMagnitudePruning(layer, 0.5, begin_step=0, end_step=1, allocation="uniform")
    gmp.prune_to(0.5)
    mask = gmp.masks[0].mask.clone()
    original = layer.parametrizations.weight.original
    harden_magnitude(layer)
    assert layer.weight is original
    assert torch.equal(layer.weight.detach(), raw * mask) and int((layer.weight == 0).sum()) == 16


def test_bad_allocation():
    with pytest.raises(ValueError, match="allocation"):
        GradualMagnitudePruning(nn.Linear(4, 4), 0.5, 0, 1, allocation="per-layer")
