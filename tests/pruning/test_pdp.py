"""PDP: what makes the method PDP, each pinned by a test that fails when its key line is broken.

The hand-derived numbers below use four weights w = (0.1, -0.2, 0.3, -0.4) at sparsity 1/2 and
tau = 0.05. The target prunes the two smallest magnitudes (0.1, 0.2) and keeps (0.3, 0.4), so
the paper's threshold is the midpoint t = (0.2 + 0.3) / 2 = 0.25, t^2 = 0.0625, a constant of the
step. Its two-way softmax keep-probability is m = e^{w^2/tau} / (e^{w^2/tau} + e^{t^2/tau}), i.e.
with x = (w^2 - t^2)/tau = (-1.05, -0.45, 0.55, 1.95):

    m          = (0.259225101, 0.389360766, 0.634135591, 0.875446642)
    m (1 - m)  = (0.192027,    0.237759,    0.232008,    0.109040)

For y = sum(w * m(w)) the product rule with dm/dw = (2 w / tau) m (1 - m) gives
dy/dw = m + (2 w^2 / tau) m (1 - m), with 2 w^2 / tau = (0.4, 1.6, 3.6, 6.4):

    dy/dw      = (0.336036080, 0.769775102, 1.469363107, 1.573301484)
    d(sum m)/dw = (2 w / tau) m (1 - m) = (0.768109792, -1.902071679, 2.784091719, -1.744637106)
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from zoo.pruning import NM, PDP, Channel, PDPMask, PDPSchedule, Unstructured, harden, pdp_mask, pdp_threshold
from zoo.pruning.pdp import global_allocation

W4 = (0.1, -0.2, 0.3, -0.4)
TAU4 = 0.05
M4 = (0.259225101, 0.389360766, 0.634135591, 0.875446642)
DY_DW4 = (0.336036080, 0.769775102, 1.469363107, 1.573301484)
DM_DW4 = (0.768109792, -1.902071679, 2.784091719, -1.744637106)

STRUCTURES = [("unstructured", 0.9), ("1:4", 0.75), ("2:4", 0.5), ("channel", 0.5)]


def _weight(seed: int = 0, shape=(32, 64)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * 0.05


def _tiny_layer() -> nn.Linear:
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([W4]))
    return layer


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 4))


def _layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


# --- the mask and its gradient -------------------------------------------------------------


def test_gradient_through_mask_matches_hand_derivation():
    w = torch.tensor(W4, dtype=torch.float64, requires_grad=True)
    m = pdp_mask(w, 0.5, TAU4, Unstructured())
    assert m.detach().tolist() == pytest.approx(M4, abs=1e-9)
    (w * m).sum().backward()
    assert w.grad.tolist() == pytest.approx(DY_DW4, abs=1e-8)


def test_layer_gradient_matches_hand_derivation_through_pdp():
    """The same numbers through PDP -> PDPMask -> parametrized nn.Linear: tau and progress reach the mask."""
    layer = _tiny_layer()
    pruner = PDP(layer, 0.5, tau=TAU4, allocation="uniform")
    pruner.set_progress(1.0)
    assert layer.weight.detach().reshape(-1).tolist() == pytest.approx([w * m for w, m in zip(W4, M4)], abs=1e-6)
    layer(torch.ones(1, 4)).sum().backward()  # y = sum(w * m(w))
    assert layer.parametrizations.weight.original.grad.reshape(-1).tolist() == pytest.approx(DY_DW4, abs=1e-5)


def test_mask_gradient_is_not_detached_and_threshold_is():
    w = torch.tensor(W4, dtype=torch.float64, requires_grad=True)
    m = pdp_mask(w, 0.5, TAU4, Unstructured())
    assert m.requires_grad
    m.sum().backward()
    # (2w/tau) m (1-m) at every weight, the two that define t included: t is a constant of the step.
    assert w.grad.tolist() == pytest.approx(DM_DW4, abs=1e-8)
    assert not pdp_threshold(w, 0.5, Unstructured()).requires_grad


def test_gradient_reaches_every_weight():
    layer = nn.Linear(16, 8)
    with torch.no_grad():
        layer.weight.copy_(_weight(1, (8, 16)))
    parametrize.register_parametrization(layer, "weight", PDPMask("unstructured", tau=1e-3, sparsity=0.9))
    layer(torch.randn(32, 16)).square().sum().backward()
    g = layer.parametrizations.weight.original.grad
    assert g is not None and bool((g != 0).all()), "pruned weights must still get gradient (they can recover)"


def test_threshold_is_midpoint_between_pruned_and_kept():
    w = torch.tensor([0.1, -0.2, 0.3, -0.4, 0.5])
    t = float(pdp_threshold(w, 0.4, Unstructured()).sqrt())  # prune 2: |0.1|, |0.2| ; keep from 0.3
    assert t == pytest.approx(0.25)
    m = pdp_mask(w, 0.4, 1e-3, Unstructured())
    assert (m[:2] < 0.5).all() and (m[2:] > 0.5).all()


def test_mask_is_half_at_threshold():
    # Two weights tie at the boundary (|w| = 0.3, one pruned, one kept): t = 0.3 and m(t) = 1/2,
    # the equal chance of being pruned or kept.
    w = torch.tensor([0.1, 0.3, -0.3, 0.5], dtype=torch.float64)
    assert float(pdp_threshold(w, 0.5, Unstructured()).sqrt()) == pytest.approx(0.3)
    m = pdp_mask(w, 0.5, 1e-4, Unstructured())
    assert m[1:3].tolist() == pytest.approx([0.5, 0.5], abs=1e-12)
    assert float(m[0]) < 1e-6 and float(m[3]) > 1 - 1e-6


@pytest.mark.parametrize("structure", [Unstructured(), NM(1, 4), Channel()])
def test_mask_in_unit_interval(structure):
    m = pdp_mask(_weight(), 0.75, 1e-4, structure)
    assert m.shape == _weight().shape
    assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0


# --- tau -------------------------------------------------------------------------------------


def test_smaller_tau_gives_a_harder_mask():
    w = _weight()
    dist = [float(torch.minimum(m, 1 - m).mean()) for m in (pdp_mask(w, 0.8, tau, Unstructured()) for tau in (1e-2, 1e-4, 1e-6))]
    assert dist[0] > 0.3 and dist[0] > dist[1] > dist[2] and dist[2] < 1e-3, dist


def test_pdp_passes_its_tau_to_the_masks():
    softness = []
    for tau in (1e-2, 1e-6):
        model = _model()
        w = model[3].weight.detach().clone()
        PDP(model, 0.5, tau=tau).set_progress(1.0)
        m = model[3].weight.detach() / w  # the soft mask the layer applies
        softness.append(float(torch.minimum(m, 1 - m).mean()))
    assert softness[0] > 0.3 and softness[1] < 0.01, softness


# --- structures -----------------------------------------------------------------------------


def test_nm_threshold_per_group():
    w = torch.tensor([[0.1, 0.4, 0.2, 0.3, 0.9, 0.1, 0.1, 0.2]])
    m = pdp_mask(w, 0.75, 1e-3, NM(1, 4))
    kept = (m > 0.5).reshape(2, 4)
    assert kept.sum(1).tolist() == [1, 1]
    assert kept[0, 1] and kept[1, 0]


@pytest.mark.parametrize("n,m", [(1, 4), (2, 4), (2, 8)])
def test_nm_soft_mask_keeps_exactly_n_of_every_m(n, m):
    w = _weight(3, (16, 32))
    soft = pdp_mask(w, 1 - n / m, 1e-5, NM(n, m))
    kept = (soft > 0.5).reshape(16, -1, m).sum(-1)
    assert bool((kept == n).all())
    # and they are each group's n largest magnitudes
    top = w.abs().reshape(16, -1, m).topk(n, dim=-1).indices
    assert bool((soft.reshape(16, -1, m).gather(-1, top) > 0.5).all())


def test_channel_soft_mask_is_per_channel_and_keeps_the_largest_norms():
    w = _weight(4, (10, 3, 3, 3))
    soft = pdp_mask(w, 0.3, 1e-5, Channel())
    per_row = soft.reshape(10, -1)
    assert bool((per_row == per_row[:, :1]).all()), "one mask value per output channel"
    pruned = per_row[:, 0] < 0.5
    assert int(pruned.sum()) == 3
    norms = w.reshape(10, -1).square().sum(1)
    assert set(norms.argsort()[:3].tolist()) == set(torch.nonzero(pruned).reshape(-1).tolist())


# --- schedule, allocation ---------------------------------------------------------------------


def test_mask_off_during_warmup_is_identity():
    layer = nn.Linear(8, 4)
    w = layer.weight.detach().clone()
    parametrize.register_parametrization(layer, "weight", PDPMask("unstructured", sparsity=0.0))
    assert torch.equal(layer.weight, w)


def test_schedule():
    s = PDPSchedule(warmup_steps=10, ramp_steps=10)
    assert s(0) == 0 and s(9) == 0 and s(10) == pytest.approx(0.1) and s(19) == 1.0 and s(1000) == 1.0


def test_set_progress_scales_every_layer_target():
    model = _model()
    pruner = PDP(model, 0.8, allocation="uniform")
    pruner.set_progress(0.0)
    assert pruner.sparsities() == [0.0, 0.0, 0.0]
    pruner.set_progress(0.25)
    assert pruner.sparsities() == pytest.approx([0.2] * 3)
    assert [float(m.sparsity) for m in pruner.masks] == pytest.approx([0.2] * 3)  # the saved buffer follows


def _two_scale_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))
    with torch.no_grad():
        model[2].weight.mul_(5)  # a layer of large weights: a global ranking prunes it less
    return model


def test_global_allocation_gives_layers_different_sparsities():
    model = _two_scale_model()
    pruner = PDP(model, 0.8, allocation="global", tau=1e-6)
    pruner.set_progress(1.0)
    a, b = pruner.layer_targets
    assert a > 0.8 > b, pruner.layer_targets
    assert round((a + b) * 1024) == round(0.8 * 2048)  # one global ranking: the overall target exactly
    harden(model)
    zeros = [int((model[i].weight == 0).sum()) for i in (0, 2)]
    assert zeros == [round(a * 1024), round(b * 1024)] and sum(zeros) == round(0.8 * 2048)


def test_uniform_allocation_prunes_every_layer_to_the_target():
    model = _two_scale_model()
    pruner = PDP(model, 0.8, allocation="uniform", tau=1e-6)
    pruner.set_progress(1.0)
    assert pruner.layer_targets == [0.8, 0.8]
    harden(model)
    assert [int((model[i].weight == 0).sum()) for i in (0, 2)] == [round(0.8 * 1024)] * 2


def test_global_allocation_hits_overall_target():
    a, b = nn.Linear(100, 50), nn.Linear(50, 10)
    with torch.no_grad():
        b.weight.mul_(10)  # a layer of large weights keeps more of them
    shares = global_allocation([a, b], 0.8)
    total = shares[0] * a.weight.numel() + shares[1] * b.weight.numel()
    assert total / (a.weight.numel() + b.weight.numel()) == pytest.approx(0.8, abs=1e-3)
    assert shares[1] < shares[0]


# --- export -----------------------------------------------------------------------------------


def test_hardened_weights_are_the_masked_values_not_the_raw_ones():
    layer = _tiny_layer()
    PDP(layer, 0.5, tau=TAU4, allocation="uniform").set_progress(1.0)
    harden(layer)
    assert type(layer) is nn.Linear and not parametrize.is_parametrized(layer)
    assert isinstance(layer.weight, nn.Parameter)
    # 1[kept] * m(w) * w: the two smallest are exact zeros, the kept carry their soft factor
    assert layer.weight.detach().reshape(-1).tolist() == pytest.approx([0.0, 0.0, 0.3 * M4[2], -0.4 * M4[3]], abs=1e-6)
    assert int((layer.weight == 0).sum()) == 2


def test_harden_keeps_the_parameter_object():
    layer = nn.Linear(8, 4)
    PDP(layer, 0.5, allocation="uniform").set_progress(1.0)
    original = layer.parametrizations.weight.original
    harden(layer)
    assert layer.weight is original, "an optimizer holding the parameter must stay valid"


@pytest.mark.parametrize("structure,target", STRUCTURES)
@pytest.mark.parametrize("allocation", ["uniform", "global"])
def test_hardened_sparsity_equals_target(structure, target, allocation):
    model = _model()
    pruner = PDP(model, target, structure=structure, tau=1e-4, allocation=allocation)
    pruner.set_progress(1.0)
    x = torch.randn(2, 4, 8, 8)
    model(x).sum().backward()  # the parametrized model runs forward and backward
    harden(model)
    layers = _layers(model)
    assert all(type(m) in (nn.Linear, nn.Conv2d) and not parametrize.is_parametrized(m) for m in layers)
    for layer, s in zip(layers, pruner.layer_targets):
        w = layer.weight.reshape(layer.weight.shape[0], -1)
        if structure in ("1:4", "2:4"):
            n, m = map(int, structure.split(":"))
            assert ((w.reshape(w.shape[0], -1, m) != 0).sum(-1) == n).all()
        elif structure == "channel":
            zero_rows = w.abs().sum(1) == 0
            assert int(zero_rows.sum()) == round(s * w.shape[0])
            assert bool((w[~zero_rows] != 0).all()), "channel pruning zeroes whole channels only"
        else:
            assert int((w == 0).sum()) == round(s * w.numel())
    if structure == "unstructured":
        total = sum(m.weight.numel() for m in layers)
        zeros = sum(int((m.weight == 0).sum()) for m in layers)
        assert zeros / total == pytest.approx(target, abs=2e-3)


def test_hardened_model_matches_soft_model_closely_when_mask_is_sharp():
    model = _model()
    pruner = PDP(model, 0.5, tau=1e-9)
    pruner.set_progress(1.0)
    x = torch.randn(3, 4, 8, 8)
    soft = model(x).detach()
    harden(model)
    assert torch.allclose(model(x), soft, atol=1e-5)


def test_state_dict_round_trip_restores_the_current_sparsity():
    model = _model()
    pruner = PDP(model, 0.6, allocation="uniform")
    pruner.set_progress(0.5)
    state = model.state_dict()
    other = _model()
    restored = PDP(other, 0.6, allocation="uniform")
    other.load_state_dict(state)
    assert restored.sparsities() == pytest.approx([0.3] * 3)
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(model(x), other(x))


def test_bad_arguments():
    with pytest.raises(ValueError, match="target sparsity"):
        PDP(_model(), 1.0)
    with pytest.raises(ValueError, match="allocation"):
        PDP(_model(), 0.5, allocation="per-layer")
    with pytest.raises(ValueError, match="N:M"):
        NM(4, 4)
    with pytest.raises(ValueError, match="fan-in divisible"):
        pdp_mask(torch.randn(4, 6), 0.75, 1e-3, NM(1, 4))
