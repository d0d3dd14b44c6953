"""What PDP and GMP share: the N:M ramp, a sync-free forward, and leaving other parametrizations alone."""

from __future__ import annotations

import ast
import contextlib
import inspect

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

import zoo.pruning.magnitude
from zoo.pruning import (
    NM,
    PDP,
    GradualMagnitudePruning,
    MagnitudeMask,
    PDPMask,
    PDPSchedule,
    harden,
    harden_magnitude,
    nm_pruned_per_group,
    pdp_mask,
)


def _pair() -> tuple[nn.Module, nn.Module]:
    def one() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))

    return one(), one()


def _pdp_pruned_per_group(layer: nn.Module, mask: PDPMask) -> torch.Tensor:
    """Per group of 4, how many weights PDP's soft mask currently pushes below 1/2."""
    w = layer.parametrizations.weight.original.detach()
    if mask.current_sparsity <= 0:
        return torch.zeros(w.shape[0], w.shape[1] // 4, dtype=torch.long)
    soft = pdp_mask(w, mask.current_sparsity, mask.tau, mask.structure)
    return (soft < 0.5).reshape(w.shape[0], -1, 4).sum(-1)


def _gmp_pruned_per_group(layer: nn.Module) -> torch.Tensor:
    w = layer.weight.detach()
    return (w == 0).reshape(w.shape[0], -1, 4).sum(-1)


# --- the N:M ramp ---------------------------------------------------------------------------


def test_nm_pruned_per_group():
    s = NM(1, 4)
    assert [nm_pruned_per_group(s, x * 0.75) for x in (0.0, 0.2, 1 / 3, 0.5, 2 / 3, 0.9, 1.0)] == [0, 1, 1, 2, 2, 3, 3]
    assert nm_pruned_per_group(s, 0.99) == 3  # never more than M - N


def test_nm_mid_ramp_is_between_dense_and_target_for_both_methods_at_matching_progress():
    model_p, model_g = _pair()
    pdp = PDP(model_p, 0.0, structure="1:4", tau=1e-6)
    gmp = GradualMagnitudePruning(model_g, 0.0, begin_step=0, end_step=100, frequency=1, structure="1:4")
    progress = 0.5  # half of the 1:4 target: 2 of every 4 pruned (round(0.5 * 3) = 2), i.e. 2:4
    pdp.set_progress(progress)
    gmp.prune_to(progress * gmp.target)
    for lp, lg, mask in zip(pdp.layers, gmp.layers, pdp.masks):
        kp, kg = _pdp_pruned_per_group(lp, mask), _gmp_pruned_per_group(lg)
        assert bool((kp == 2).all()) and bool((kg == 2).all()), "mid-ramp: between 4:4 and 1:4, the same in both"
    # and PDP exported mid-ramp is 2:4 exactly
    harden(model_p)
    for layer in (model_p[0], model_p[2]):
        assert bool(((layer.weight.reshape(layer.weight.shape[0], -1, 4) != 0).sum(-1) == 2).all())


def test_nm_ramps_through_every_pattern_on_both_schedules():
    model_p, model_g = _pair()
    warmup, ramp = 10, 60
    pdp = PDP(model_p, 0.0, structure="1:4", tau=1e-6)
    schedule = PDPSchedule(warmup, ramp)
    gmp = GradualMagnitudePruning(model_g, 0.0, begin_step=warmup, end_step=warmup + ramp, frequency=1, structure="1:4")
    seen_p, seen_g = [], []
    for step in range(warmup + ramp + 5):
        pdp.set_progress(schedule(step))
        gmp.step(step)
        kp = _pdp_pruned_per_group(pdp.layers[0], pdp.masks[0])
        kg = _gmp_pruned_per_group(gmp.layers[0])
        assert bool((kp == kp.flatten()[0]).all()) and bool((kg == kg.flatten()[0]).all()), "one count per group"
        seen_p.append(int(kp.flatten()[0]))
        seen_g.append(int(kg.flatten()[0]))
    for seen in (seen_p, seen_g):
        assert seen[:warmup] == [0] * warmup, "dense during warm-up"
        assert seen == sorted(seen), "monotone ramp"
        assert set(seen) == {0, 1, 2, 3}, f"passes 3:4 and 2:4 on the way to 1:4, not a jump: {seen}"
        assert seen[-1] == 3
    # mid-ramp both are strictly between dense and 1:4 somewhere in the first half of the ramp
    quarter = warmup + ramp // 4
    assert 0 < seen_p[quarter] < 3 and 0 < seen_g[quarter] < 3


# --- no host sync in the forward path -------------------------------------------------------

_SYNCS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


@contextlib.contextmanager
def _no_host_sync(monkeypatch: pytest.MonkeyPatch):
    """Every way to pull a tensor's value onto the host raises while the block runs."""

    def trap(name: str):
        def raise_(*args, **kwargs):
            raise AssertionError(f"host sync: Tensor.{name} called in the forward / mask path")

        return raise_

    with monkeypatch.context() as mp:
        for name in _SYNCS:
            mp.setattr(torch.Tensor, name, trap(name))
        yield


def _pruned(method: str, structure: str) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 4))
    if method == "pdp":
        PDP(model, 0.6, structure=structure).set_progress(0.5)
    else:
        gmp = GradualMagnitudePruning(model, 0.6, begin_step=0, end_step=10, frequency=1, structure=structure)
        gmp.step(5)
    return model


@pytest.mark.parametrize("structure", ["unstructured", "1:4", "channel"])
@pytest.mark.parametrize("method", ["pdp", "gmp"])
def test_forward_makes_no_host_sync_on_cpu(method, structure, monkeypatch):
    model = _pruned(method, structure)
    x = torch.randn(2, 4, 8, 8)
    expected = model(x)
    with _no_host_sync(monkeypatch):
        out = model(x)  # every parametrized weight recomputes its mask here
    assert torch.equal(out, expected)


def test_the_sync_trap_works(monkeypatch):
    mask = PDPMask("unstructured", sparsity=0.5)
    with _no_host_sync(monkeypatch), pytest.raises(AssertionError, match="host sync"):
        float(mask.sparsity)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("structure", ["unstructured", "1:4", "channel"])
@pytest.mark.parametrize("method", ["pdp", "gmp"])
def test_forward_makes_no_cuda_sync(method, structure):
    model = _pruned(method, structure).cuda()
    x = torch.randn(2, 4, 8, 8, device="cuda")
    model(x)  # first call: lazy initialisation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        model(x).sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)


# --- other parametrizations survive hardening -----------------------------------------------


class _Double(nn.Module):
    """An unrelated parametrization (another library's, say): W -> 2 W."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return 2 * w

    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        return w / 2


def _attach(method: str, layer: nn.Linear) -> None:
    if method == "pdp":
        PDP(layer, 0.5, tau=1e-6, allocation="uniform").set_progress(1.0)
    else:
        gmp = GradualMagnitudePruning(layer, 0.5, begin_step=0, end_step=1, allocation="uniform")
        gmp.prune_to(0.5)


_HARDEN = {"pdp": (harden, PDPMask), "gmp": (harden_magnitude, MagnitudeMask)}


@pytest.mark.parametrize("method", ["pdp", "gmp"])
def test_harden_keeps_a_parametrization_registered_after_the_mask(method):
    torch.manual_seed(0)
    layer = nn.Linear(8, 4)
    _attach(method, layer)
    parametrize.register_parametrization(layer, "weight", _Double())
    before = layer.weight.detach().clone()  # 2 * mask(W)
    fn, own = _HARDEN[method]
    fn(layer)
    chain = list(layer.parametrizations.weight)
    assert [type(p) for p in chain] == [_Double], "only the pruning mask is removed"
    exported = layer.parametrizations.weight.original.detach()
    assert int((exported == 0).sum()) == 16, "real zeros under the foreign parametrization"
    assert torch.allclose(layer.weight, before * (exported != 0), atol=1e-6)


@pytest.mark.parametrize("method", ["pdp", "gmp"])
def test_harden_keeps_weight_norm_registered_before_the_mask(method):
    torch.manual_seed(0)
    layer = weight_norm(nn.Linear(8, 4))
    _attach(method, layer)
    assert len(layer.parametrizations.weight) == 2
    before = layer.weight.detach().clone()
    fn, own = _HARDEN[method]
    fn(layer)
    chain = list(layer.parametrizations.weight)
    assert len(chain) == 1 and not isinstance(chain[0], own), "weight norm stays, the mask goes"
    assert hasattr(layer.parametrizations.weight, "original0"), "weight norm's g and v are kept"
    assert int((layer.weight == 0).sum()) == 16
    assert torch.allclose(layer.weight, before * (layer.weight != 0), atol=1e-6)


def test_magnitude_does_not_import_pdp():
    tree = ast.parse(inspect.getsource(zoo.pruning.magnitude))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "zoo.pruning.pdp" not in imported
