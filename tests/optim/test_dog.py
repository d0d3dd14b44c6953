"""Tests for zoo.optim.dog (DoG, L-DoG and the polynomial-decay averager).

* differential tests against the authors' package (``dog-optimizer==1.0.3``, module ``dog``): the
  same initial weights and, in lock-step, the same gradients fed to both; several parameter
  groups, weight decay, ``init_eta``, resuming mid-run from ``state_dict``: after N steps
  each parameter tensor (relative, in norm) and the step sizes agree to 1e-10 in float64 (60
  steps) and 1e-5 in float32 (30 steps; our ``r̄`` and ``G`` are float64 host numbers, the
  package's are tensors of the parameters' dtype);
* hand-derived values on 1-D problems that need no reference: the first step sizes from
  ``r_ε = α (1 + ||x_0||)`` and the sum of squared gradient norms, ``r̄`` as a running maximum
  when the iterate comes back towards ``x_0``, layer-wise against global norms, the averager's
  weights ``(1 + γ) / (t + γ)``;
* the departures: ``p.grad`` untouched, parameters without gradients, ``lr = 0``, argument checks.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from zoo.optim import DoG, LDoG, PolynomialDecayAverager

try:
    import dog as dog_ref
except ImportError:  # only the differential tests need the reference package
    dog_ref = None
needs_reference = pytest.mark.skipif(dog_ref is None, reason="the reference package dog-optimizer is not installed")

# float64 runs 60 steps; float32 rounding differences (our r̄ and G are float64, the package's of the
# parameters' dtype) grow with the step count on the two-group L-DoG problem (worst case 1.7e-6 at
# 30 steps, 3e-5 at 60, where both runs are 5e-5 from a float64 run fed the same gradients), so
# float32 compares 30 steps.
STEPS = {torch.float64: 60, torch.float32: 30}
RTOL = {torch.float64: 1e-10, torch.float32: 1e-5}
EPS = 1e-8


def _model(dtype, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)


def _groups(model, layout):
    """Parameter groups: one group, or two with their own weight decay / reps_rel."""
    if layout == "one":
        return [{"params": list(model.parameters())}]
    return [
        {"params": list(model[0].parameters()), "weight_decay": 1e-2},
        {"params": list(model[2].parameters()), "reps_rel": 1e-4},
    ]


def _grads(model, dtype, step):
    """The gradient of a fixed regression loss at ``model``'s weights, one tensor per parameter."""
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(16, 4, generator=g, dtype=dtype)
    y = torch.randn(16, 3, generator=g, dtype=dtype)
    model.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    return [p.grad.detach().clone() for p in model.parameters()]


def _set_grads(model, grads):
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()


def _ref_etas(group):
    return [float(e) for e in group["eta"]]


def _our_etas(group):
    return list(group["eta"]) if isinstance(group["eta"], list) else [group["eta"]] * len(group["params"])


def _rel(a, b):
    """||a - b|| / ||b||, per tensor: elements near zero need no tolerance of their own."""
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _assert_same(ours, ref, opt, ref_opt, dtype):
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert _rel(a, b) <= RTOL[dtype], f"parameters differ by {_rel(a, b):.2e} (relative, in norm)"
    for g, rg in zip(opt.param_groups, ref_opt.param_groups):
        ref_rbar = rg["rbar"].detach().double().reshape(-1)
        ours_rbar = torch.tensor(g["rbar"], dtype=torch.float64).reshape(-1)
        torch.testing.assert_close(ours_rbar, ref_rbar.expand_as(ours_rbar), rtol=RTOL[dtype], atol=0.0)
        torch.testing.assert_close(torch.tensor(_our_etas(g), dtype=torch.float64),
                                   torch.tensor(_ref_etas(rg), dtype=torch.float64), rtol=RTOL[dtype], atol=0.0)


def _lockstep(ours, ref, opt, ref_opt, dtype, steps, start=0):
    for t in range(start, start + steps):
        grads = _grads(ours, dtype, t)
        _set_grads(ours, grads)
        _set_grads(ref, grads)
        opt.step()
        ref_opt.step()


CASES = [(DoG, "DoG", {}), (LDoG, "LDoG", {}), (DoG, "DoG", {"weight_decay": 1e-3}),
         (LDoG, "LDoG", {"weight_decay": 1e-3}), (DoG, "DoG", {"init_eta": 1e-3}), (LDoG, "LDoG", {"init_eta": 1e-3})]
CASE_IDS = ["dog", "ldog", "dog_wd", "ldog_wd", "dog_init_eta", "ldog_init_eta"]


@needs_reference
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("layout", ["one", "two"])
@pytest.mark.parametrize(("cls", "ref_name", "kwargs"), CASES, ids=CASE_IDS)
def test_matches_the_authors_package(cls, ref_name, kwargs, layout, dtype):
    ours, ref = _model(dtype), _model(dtype)
    opt = cls(_groups(ours, layout), **kwargs)
    ref_opt = getattr(dog_ref, ref_name)(_groups(ref, layout), **kwargs)
    _lockstep(ours, ref, opt, ref_opt, dtype, STEPS[dtype])
    _assert_same(ours, ref, opt, ref_opt, dtype)
    assert all(g["step"] == STEPS[dtype] for g in opt.param_groups)
    # the weights moved far beyond r_ε: the comparison is not of two runs standing still
    for g in opt.param_groups:
        assert (torch.tensor(g["rbar"]) > 30 * g["reps_rel"]).all()


@needs_reference
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize(("cls", "ref_name", "kwargs"), CASES[:4], ids=CASE_IDS[:4])
def test_resume_mid_run_matches_the_authors_package(cls, ref_name, kwargs, dtype):
    ours, ref = _model(dtype), _model(dtype)
    opt = cls(_groups(ours, "two"), **kwargs)
    ref_opt = getattr(dog_ref, ref_name)(_groups(ref, "two"), **kwargs)
    _lockstep(ours, ref, opt, ref_opt, dtype, STEPS[dtype] // 2)
    saved = copy.deepcopy((ours.state_dict(), opt.state_dict(), ref.state_dict(), ref_opt.state_dict()))

    ours2, ref2 = _model(dtype, seed=1), _model(dtype, seed=1)
    ours2.load_state_dict(saved[0])
    ref2.load_state_dict(saved[2])
    opt2 = cls(_groups(ours2, "two"), **kwargs)
    ref_opt2 = getattr(dog_ref, ref_name)(_groups(ref2, "two"), **kwargs)
    opt2.load_state_dict(saved[1])
    ref_opt2.load_state_dict(saved[3])
    _lockstep(ours2, ref2, opt2, ref_opt2, dtype, STEPS[dtype] // 2, start=STEPS[dtype] // 2)
    _assert_same(ours2, ref2, opt2, ref_opt2, dtype)

    _lockstep(ours, ref, opt, ref_opt, dtype, STEPS[dtype] // 2, start=STEPS[dtype] // 2)  # the uninterrupted run
    for a, b in zip(ours.parameters(), ours2.parameters()):
        assert torch.equal(a, b), "resuming our optimizer is bit-exact"


@needs_reference
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("gamma", [8.0, 0.0, 3.5])
def test_averager_matches_the_authors_package(dtype, gamma):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2)).to(dtype)
    ours, ref = PolynomialDecayAverager(model, gamma=gamma), dog_ref.PolynomialDecayAverager(model, gamma=gamma)
    opt = DoG(model.parameters())
    for t in range(30):
        x = torch.randn(8, 4, dtype=dtype)
        opt.zero_grad()
        model(x).pow(2).mean().backward()  # also moves the batch-norm statistics
        opt.step()
        ours.step()
        ref.step()
        if t == 14:  # resume both mid-run
            ours2 = PolynomialDecayAverager(model, gamma=gamma)
            ours2.load_state_dict(copy.deepcopy(ours.state_dict()))
            ours = ours2
    assert ours.t == ref.t == 31
    for (k, a), (k2, b) in zip(ours.averaged_model.state_dict().items(), ref.averaged_model.state_dict().items()):
        assert k == k2
        if a.is_floating_point():
            assert _rel(a, b) <= RTOL[dtype], k
        else:
            assert torch.equal(a, b), k


# ----------------------------------------------------------------------------- hand-derived


def _scalar_run(cls, x0, grads, **kwargs):
    """Step ``cls`` on one parameter from ``x0`` with the given gradients; the groups after each step."""
    p = nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    opt = cls([p], **kwargs)
    logs = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        logs.append({**opt.step_sizes()[0], "x": p.detach().clone()})
    return logs


def test_first_step_sizes_by_hand():
    """f(x) = 2x from x_0 = 3: r_ε = 1e-6 (1 + 3), G_0 = 4 + eps, G_1 = 8 + eps; r̄ stays r_ε."""
    logs = _scalar_run(DoG, [3.0], [[2.0]] * 3)
    r_eps = 1e-6 * (1 + 3)
    assert logs[0]["rbar"] == pytest.approx(r_eps, rel=1e-14)
    assert logs[0]["eta"] == pytest.approx(r_eps / math.sqrt(4 + EPS), rel=1e-14)
    assert logs[0]["G"] == pytest.approx(4 + EPS, rel=1e-14)
    # the first move, 2 η_0 < r_ε, leaves r̄ at r_ε
    assert logs[1]["rbar"] == pytest.approx(r_eps, rel=1e-14)
    assert logs[1]["eta"] == pytest.approx(r_eps / math.sqrt(8 + EPS), rel=1e-14)
    # after two moves the distance 2 (η_0 + η_1) exceeds r_ε
    moved = 2 * (logs[0]["eta"] + logs[1]["eta"])
    assert moved > r_eps
    assert logs[2]["rbar"] == pytest.approx(moved, rel=1e-12)
    assert logs[2]["eta"] == pytest.approx(moved / math.sqrt(12 + EPS), rel=1e-12)
    assert float(logs[2]["x"][0]) == pytest.approx(3 - moved - 2 * logs[2]["eta"], rel=1e-14)


def test_r_eps_uses_the_norm_of_the_whole_group():
    """x_0 = (3, 4): ||x_0|| = 5, r_ε = 6e-6; gradient (0.6, 0.8) of norm 1."""
    logs = _scalar_run(DoG, [3.0, 4.0], [[0.6, 0.8]], reps_rel=1e-6)
    assert logs[0]["eta"] == pytest.approx(6e-6 / math.sqrt(1 + EPS), rel=1e-14)
    logs = _scalar_run(DoG, [3.0, 4.0], [[0.6, 0.8]], reps_rel=1e-4)
    assert logs[0]["eta"] == pytest.approx(6e-4 / math.sqrt(1 + EPS), rel=1e-14)


def _one(v):
    return v[0] if isinstance(v, list) else v


@pytest.mark.parametrize("cls", [DoG, LDoG])
def test_rbar_is_the_running_maximum_of_the_distance(cls):
    """init_eta = 1, gradients 1, -1, 1 from x_0 = 0: x_1 = -1, x_2 = -1 + 1/sqrt(2) (distance 0.29)."""
    logs = _scalar_run(cls, [0.0], [[1.0], [-1.0], [1.0], [1.0]], init_eta=1.0)
    eta, rbar = [_one(g["eta"]) for g in logs], [_one(g["rbar"]) for g in logs]
    assert eta[0] == 1.0 and float(logs[0]["x"][0]) == -1.0
    assert rbar[1] == pytest.approx(1.0, rel=1e-15)
    assert eta[1] == pytest.approx(1 / math.sqrt(2 + EPS), rel=1e-14)
    assert abs(float(logs[1]["x"][0])) < 0.3  # came back towards x_0
    assert rbar[2] == pytest.approx(1.0, rel=1e-15)  # the maximum, not the current 0.29
    assert eta[2] == pytest.approx(1 / math.sqrt(3 + EPS), rel=1e-14)
    assert eta[3] == pytest.approx(1 / math.sqrt(4 + EPS), rel=1e-14)


def test_ldog_uses_per_layer_norms_and_dog_the_global_ones():
    """Two tensors: a (x_0 = 3, g = 2) and b (x_0 = (1, 1, 1), g = (.5, .5, .5))."""
    def run(cls):
        a = nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
        b = nn.Parameter(torch.ones(3, dtype=torch.float64))
        opt = cls([a, b])
        for _ in range(2):
            a.grad = torch.tensor([2.0], dtype=torch.float64)
            b.grad = torch.full((3,), 0.5, dtype=torch.float64)
            opt.step()
            yield opt.step_sizes()[0]

    l0, l1 = run(LDoG)
    r_a, r_b = 1e-6 * (1 + 3), 1e-6 * (1 + math.sqrt(3))
    assert l0["eta"] == pytest.approx([r_a / math.sqrt(4 + EPS), r_b / math.sqrt(0.75 + EPS)], rel=1e-14)
    assert l0["rbar"] == pytest.approx([r_a, r_b], rel=1e-14)
    assert l1["G"] == pytest.approx([8 + EPS, 1.5 + EPS], rel=1e-14)
    assert l1["eta"] == pytest.approx([r_a / math.sqrt(8 + EPS), r_b / math.sqrt(1.5 + EPS)], rel=1e-14)

    d0, d1 = run(DoG)
    r = 1e-6 * (1 + math.sqrt(9 + 3))
    assert d0["rbar"] == pytest.approx(r, rel=1e-14)
    assert d0["eta"] == pytest.approx(r / math.sqrt(4.75 + EPS), rel=1e-14)
    assert d1["eta"] == pytest.approx(r / math.sqrt(9.5 + EPS), rel=1e-14)


def test_weight_decay_enters_the_gradient_and_its_norm():
    """x_0 = 3, f' = 2, λ = 0.5: g_0 = 2 + 1.5 = 3.5."""
    logs = _scalar_run(DoG, [3.0], [[2.0]], weight_decay=0.5)
    assert logs[0]["G"] == pytest.approx(3.5**2 + EPS, rel=1e-14)
    assert float(logs[0]["x"][0]) == pytest.approx(3 - 3.5 * 4e-6 / math.sqrt(3.5**2 + EPS), rel=1e-14)


@pytest.mark.parametrize("gamma", [8.0, 0.0, 2.0])
def test_averager_weights_by_hand(gamma):
    """x_t = t^2: the recursion with weights (1 + γ)/(t + γ); γ = 0 is the plain running mean."""
    p = nn.Parameter(torch.zeros((), dtype=torch.float64))
    model = nn.ParameterList([p])
    avg = PolynomialDecayAverager(model, gamma=gamma)
    expected = 0.0
    for t in range(1, 8):
        with torch.no_grad():
            p.fill_(float(t * t))
        assert avg.weight() == pytest.approx((1 + gamma) / (t + gamma), rel=1e-15)
        avg.step()
        w = (1 + gamma) / (t + gamma)
        expected = (1 - w) * expected + w * t * t
        assert float(avg.averaged_model[0].detach()) == pytest.approx(expected, rel=1e-14)
    if gamma == 0.0:
        assert expected == pytest.approx(sum(t * t for t in range(1, 8)) / 7, rel=1e-14)
    avg.reset()
    avg.step()  # t = 1 again: the average becomes the current weights
    assert float(avg.averaged_model[0].detach()) == 49.0
    assert float(avg.base_model[0].detach()) == 49.0


def test_averager_second_step_by_hand():
    """γ = 8: x̄_1 = x_1 = 1, x̄_2 = (1 - 9/10) * 1 + 9/10 * 2 = 1.9."""
    p = nn.Parameter(torch.ones((), dtype=torch.float64))
    avg = PolynomialDecayAverager(nn.ParameterList([p]))
    avg.step()
    with torch.no_grad():
        p.fill_(2.0)
    avg.step()
    assert float(avg.averaged_model[0].detach()) == pytest.approx(1.9, rel=1e-15)


# ----------------------------------------------------------------------------- departures and contract


@pytest.mark.parametrize("cls", [DoG, LDoG])
def test_gradients_are_not_modified(cls):
    p = nn.Parameter(torch.tensor([3.0, -1.0], dtype=torch.float64))
    opt = cls([p], weight_decay=0.1)
    p.grad = torch.tensor([1.0, 2.0], dtype=torch.float64)
    opt.step()
    assert torch.equal(p.grad, torch.tensor([1.0, 2.0], dtype=torch.float64))


@pytest.mark.parametrize("cls", [DoG, LDoG])
def test_parameters_without_gradients_and_late_groups(cls):
    a = nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
    b = nn.Parameter(torch.tensor([5.0], dtype=torch.float64))
    opt = cls([{"params": [a]}, {"params": [b]}])
    for _ in range(3):
        a.grad = torch.tensor([2.0], dtype=torch.float64)
        opt.step()
    assert float(b.detach()[0]) == 5.0 and opt.param_groups[1]["step"] == 0
    b.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step()  # group 1 starts now, at its own first step
    assert opt.param_groups[1]["step"] == 1
    eta = opt.param_groups[1]["eta"]
    eta = eta[0] if isinstance(eta, list) else eta
    assert eta == pytest.approx(1e-6 * 6 / math.sqrt(4 + EPS), rel=1e-14)


@pytest.mark.parametrize("cls", [DoG, LDoG])
def test_lr_zero_freezes_but_keeps_accumulating(cls):
    p = nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
    opt = cls([p], lr=0.0)
    for _ in range(2):
        p.grad = torch.tensor([2.0], dtype=torch.float64)
        opt.step()
    assert float(p.detach()[0]) == 3.0
    G = opt.param_groups[0]["G"]
    assert (G[0] if isinstance(G, list) else G) == pytest.approx(8 + EPS, rel=1e-14)


def test_argument_checks():
    p = [nn.Parameter(torch.zeros(1))]
    for bad in ({"lr": -1.0}, {"reps_rel": 0.0}, {"weight_decay": -1.0}, {"eps": -1.0}, {"init_eta": 0.0}):
        with pytest.raises(ValueError):
            DoG(p, **bad)
    assert DoG(p, reps_rel=0.0, init_eta=1.0).param_groups[0]["reps_rel"] == 0.0
    with pytest.raises(ValueError):
        PolynomialDecayAverager(nn.Linear(1, 1), gamma=-1.0)


@needs_reference
@pytest.mark.parametrize(("cls", "ref_name"), [(DoG, "DoG"), (LDoG, "LDoG")], ids=["dog", "ldog"])
def test_the_chunked_cpu_path_for_large_tensors_matches_the_authors_package(cls, ref_name):
    """Tensors above the slice size take the chunked distance and dot-product norms (the fast CPU
    path); in float64 they must agree with the package as closely as the small-tensor path."""
    from zoo.optim import dog as dog_module

    n = 3 * dog_module._CHUNK + 17  # several slices and a remainder
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(n, generator=g, dtype=torch.float64)
    small = torch.randn(7, generator=g, dtype=torch.float64)  # and one tensor on the old path
    ours = [nn.Parameter(w0.clone()), nn.Parameter(small.clone())]
    ref = [nn.Parameter(w0.clone()), nn.Parameter(small.clone())]
    assert dog_module._large_cpu(ours[0]) and not dog_module._large_cpu(ours[1])
    # init_eta makes the weights move far from x0 at once, so the distances decide the step sizes.
    opt = cls(ours, weight_decay=1e-3, init_eta=1e-2)
    ref_opt = getattr(dog_ref, ref_name)(ref, weight_decay=1e-3, init_eta=1e-2)
    x0 = [p.detach().clone() for p in ours]
    best, best_group = [0.0, 0.0], 0.0
    for _ in range(6):
        # rbar_t is the running maximum of the distance at the iterate the step starts from,
        # computed here directly: one norm over the group for DoG, one per tensor for L-DoG.
        dists = [float((p.detach() - x).norm()) for p, x in zip(ours, x0)]
        best = [max(b, d) for b, d in zip(best, dists)]
        best_group = max(best_group, math.sqrt(sum(d * d for d in dists)))
        grads = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in ours]
        for ps in (ours, ref):
            for p, gr in zip(ps, grads):
                p.grad = gr.clone()
        opt.step()
        ref_opt.step()
        rbar = opt.param_groups[0]["rbar"]
        assert rbar == pytest.approx(best_group if cls is DoG else best, rel=1e-9, abs=1e-300)
    for a, b in zip(ours, ref):
        assert float((a - b).detach().norm() / b.detach().norm()) < 1e-10
