"""PDP's soft mask: range, value at the threshold, gradients, schedule and exact hardened sparsity."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from zoo.pruning import NM, PDP, Channel, PDPMask, PDPSchedule, Unstructured, harden, pdp_mask, pdp_threshold
from zoo.pruning.pdp import global_allocation

STRUCTURES = [("unstructured", 0.9), ("1:4", 0.75), ("2:4", 0.5), ("channel", 0.5)]


def _weight(seed: int = 0, shape=(32, 64)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * 0.05


@pytest.mark.parametrize("structure", [Unstructured(), NM(1, 4), Channel()])
def test_mask_in_unit_interval(structure):
    m = pdp_mask(_weight(), 0.8, 1e-4, structure)
    assert m.shape == _weight().shape
    assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0


def test_mask_is_half_at_threshold():
    w = _weight().reshape(-1)
    t2 = pdp_threshold(w, 0.5, Unstructured())
    probe = torch.cat([w, t2.sqrt()])  # a weight exactly at the threshold ...
    # ... evaluated with the threshold of the original weights: m(t) = sigmoid(0) = 1/2
    m = torch.sigmoid((probe.square() - t2) / 1e-4)
    assert float(m[-1]) == pytest.approx(0.5, abs=1e-6)


def test_threshold_is_midpoint_between_pruned_and_kept():
    w = torch.tensor([0.1, -0.2, 0.3, -0.4, 0.5])
    t = float(pdp_threshold(w, 0.4, Unstructured()).sqrt())  # prune 2: |0.1|, |0.2| ; keep from 0.3
    assert t == pytest.approx(0.25)
    m = pdp_mask(w, 0.4, 1e-3, Unstructured())
    assert (m[:2] < 0.5).all() and (m[2:] > 0.5).all()


def test_nm_threshold_per_group():
    w = torch.tensor([[0.1, 0.4, 0.2, 0.3, 0.9, 0.1, 0.1, 0.2]])
    m = pdp_mask(w, 0.75, 1e-3, NM(1, 4))
    kept = (m > 0.5).reshape(2, 4)
    assert kept.sum(1).tolist() == [1, 1]
    assert kept[0, 1] and kept[1, 0]


def test_gradient_reaches_every_weight():
    layer = nn.Linear(16, 8)
    with torch.no_grad():
        layer.weight.copy_(_weight(1, (8, 16)))
    mask = PDPMask("unstructured", tau=1e-3, sparsity=0.9)
    parametrize.register_parametrization(layer, "weight", mask)
    x = torch.randn(32, 16)
    layer(x).square().sum().backward()
    g = layer.parametrizations.weight.original.grad
    assert g is not None and bool((g != 0).all()), "pruned weights must still get gradient (they can recover)"


def test_mask_off_during_warmup_is_identity():
    layer = nn.Linear(8, 4)
    w = layer.weight.detach().clone()
    parametrize.register_parametrization(layer, "weight", PDPMask("unstructured", sparsity=0.0))
    assert torch.equal(layer.weight, w)


def test_schedule():
    s = PDPSchedule(warmup_steps=10, ramp_steps=10)
    assert s(0) == 0 and s(9) == 0 and s(10) == pytest.approx(0.1) and s(19) == 1.0 and s(1000) == 1.0


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 4))


@pytest.mark.parametrize("structure,target", STRUCTURES)
@pytest.mark.parametrize("allocation", ["uniform", "global"])
def test_hardened_sparsity_equals_target(structure, target, allocation):
    model = _model()
    pruner = PDP(model, target, structure=structure, tau=1e-4, allocation=allocation)
    pruner.set_progress(1.0)
    x = torch.randn(2, 4, 8, 8)
    model(x).sum().backward()  # the parametrized model runs forward and backward
    harden(model)
    layers = [m for m in model if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert not any(parametrize.is_parametrized(m) for m in layers)
    for layer, s in zip(layers, pruner.layer_targets):
        w = layer.weight.reshape(layer.weight.shape[0], -1)
        if structure in ("1:4", "2:4"):
            n, m = map(int, structure.split(":"))
            assert ((w.reshape(w.shape[0], -1, m) != 0).sum(-1) == n).all()
        elif structure == "channel":
            assert int((w.abs().sum(1) == 0).sum()) == round(s * w.shape[0])
        else:
            assert int((w == 0).sum()) == round(s * w.numel())
    if structure == "unstructured":
        total = sum(m.weight.numel() for m in layers)
        zeros = sum(int((m.weight == 0).sum()) for m in layers)
        assert zeros / total == pytest.approx(target, abs=2e-3)


def test_global_allocation_hits_overall_target():
    a, b = nn.Linear(100, 50), nn.Linear(50, 10)
    with torch.no_grad():
        b.weight.mul_(10)  # a layer of large weights keeps more of them
    shares = global_allocation([a, b], 0.8)
    total = shares[0] * a.weight.numel() + shares[1] * b.weight.numel()
    assert total / (a.weight.numel() + b.weight.numel()) == pytest.approx(0.8, abs=1e-3)
    assert shares[1] < shares[0]


def test_hardened_model_matches_soft_model_closely_when_mask_is_sharp():
    model = _model()
    pruner = PDP(model, 0.5, tau=1e-9)
    pruner.set_progress(1.0)
    x = torch.randn(3, 4, 8, 8)
    soft = model(x).detach()
    harden(model)
    assert torch.allclose(model(x), soft, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="target sparsity"):
        PDP(_model(), 1.0)
    with pytest.raises(ValueError, match="N:M"):
        NM(4, 4)
    with pytest.raises(ValueError, match="fan-in divisible"):
        pdp_mask(torch.randn(4, 6), 0.75, 1e-3, NM(1, 4))
