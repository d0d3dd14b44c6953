"""Tests for zoo.optim.d_adaptation.

* differential tests against the authors' package (``dadaptation==3.2``): same model, data,
  seeds and hyper-parameters, parameters and the D estimate agree over 120 steps;
* the optimizer contract: state_dict round trip mid-run, several parameter groups, an LR
  scheduler on top, parameters without gradients, closures, argument checks;
* Algorithm 1 (dual averaging) against a direct transcription, and its lower bound ``d <= D``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import nn

from zoo.optim import DAdaptAdaGrad, DAdaptAdam, DAdaptDualAveraging, DAdaptSGD

dadaptation = pytest.importorskip("dadaptation")

STEPS = 100


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]

# (ours, reference, hyper-parameters) for each variant, weight decay off and on.
CASES = {
    "sgd": (DAdaptSGD, "DAdaptSGD", {"momentum": 0.9}),
    "sgd_wd": (DAdaptSGD, "DAdaptSGD", {"momentum": 0.9, "weight_decay": 1e-2}),
    "sgd_nomom": (DAdaptSGD, "DAdaptSGD", {}),
    "adam": (DAdaptAdam, "DAdaptAdam", {}),
    "adam_wd": (DAdaptAdam, "DAdaptAdam", {"weight_decay": 1e-2}),
    "adam_wd_decoupled": (DAdaptAdam, "DAdaptAdam", {"weight_decay": 1e-2, "decouple": True}),
    "adam_bias_correction": (DAdaptAdam, "DAdaptAdam", {"use_bias_correction": True, "growth_rate": 1.1}),
    "adagrad": (DAdaptAdaGrad, "DAdaptAdaGrad", {}),
    "adagrad_wd": (DAdaptAdaGrad, "DAdaptAdaGrad", {"weight_decay": 1e-2, "momentum": 0.5}),
}
# Relative tolerances: float64 agrees to rounding; float32 to accumulated float32 rounding.
TOL = {torch.float64: 1e-9, torch.float32: 2e-4}


class _Net(nn.Module):
    """A small MLP with a second head that is only used on some steps (its grads are then None)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 24), nn.Tanh(), nn.Linear(24, 24), nn.Tanh())
        self.head = nn.Linear(24, 3)
        self.aux = nn.Linear(24, 3)
        self.unused = nn.Parameter(torch.ones(5))  # never receives a gradient

    def forward(self, x: torch.Tensor, use_aux: bool) -> torch.Tensor:
        h = self.body(x)
        return self.head(h) + (self.aux(h) if use_aux else 0.0)


def _net(dtype: torch.dtype, device: str) -> _Net:
    torch.manual_seed(0)
    return _Net().to(device=device, dtype=dtype)


def _data(device: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, :3].argmax(1) + (x[:, 3] > 1).long()) % 3
    return x.to(device=device, dtype=dtype), y.to(device)


def _train(
    model: _Net,
    opt: torch.optim.Optimizer,
    steps: int,
    device: str,
    start: int = 0,
    sched: Any = None,
    aux_every: int = 1,
) -> list[float]:
    """Minibatch steps with a fixed batch order; returns the D estimate after every step."""
    x, y = _data(device, next(model.parameters()).dtype)
    ds = []
    for k in range(start, start + steps):
        idx = torch.arange(32 * k, 32 * (k + 1)) % x.shape[0]
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x[idx], use_aux=k % aux_every == 0), y[idx]).backward()
        opt.step()
        if sched is not None:
            sched.step()
        ds.append(opt.param_groups[0]["d"])
    return ds


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])


def _reference(name: str) -> type:
    return getattr(dadaptation, name)


def _lockstep(
    ours: nn.Module,
    ours_opt: torch.optim.Optimizer,
    ref: nn.Module,
    ref_opt: torch.optim.Optimizer,
    steps: int,
    device: str,
    scheds: tuple[Any, Any] | None = None,
    aux_every: int = 1,
) -> tuple[float, float, list[float]]:
    """Step both optimizers on the same gradients; the worst relative parameter and D errors.

    Before every step ``ours`` gets the reference's parameters and gradients, so both apply one
    step to identical inputs while each carries its own optimizer state (moments, ``s``,
    numerators, D) through all the steps. Without this, rounding differences are amplified by
    the training dynamics themselves (exponentially at D-Adaptation's large steps) and a
    tolerance would test the network, not the optimizer.
    """
    x, y = _data(device, next(ref.parameters()).dtype)
    worst_p, worst_d, ds = 0.0, 0.0, []
    for k in range(steps):
        idx = torch.arange(32 * k, 32 * (k + 1)) % x.shape[0]
        ref_opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(ref(x[idx], use_aux=k % aux_every == 0), y[idx]).backward()
        with torch.no_grad():
            for p, q in zip(ours.parameters(), ref.parameters()):
                p.copy_(q)
                p.grad = None if q.grad is None else q.grad.clone()
        ours_opt.step()
        ref_opt.step()  # the reference may modify q.grad in place (weight decay): step it second
        for sched in scheds or ():
            sched.step()
        a, b = _flat(ours), _flat(ref)
        assert torch.isfinite(a).all()
        worst_p = max(worst_p, ((a - b).abs().max() / b.abs().max()).item())
        d1, d2 = ours_opt.param_groups[0]["d"], ref_opt.param_groups[0]["d"]
        worst_d = max(worst_d, abs(d1 - d2) / d2)
        ds.append(d1)
    return worst_p, worst_d, ds


def _check(errors: tuple[float, float, list[float]], tol: float) -> None:
    worst_p, worst_d, ds = errors
    assert worst_p <= tol, f"parameters differ from the reference by {worst_p:.2e} (relative to max |x|) > {tol:.0e}"
    assert worst_d <= tol, f"D estimate differs from the reference by {worst_d:.2e} (relative) > {tol:.0e}"
    assert ds[-1] > 30 * ds[0], "D never adapted: the test would not exercise the estimate"


# ----------------------------------------------------------------------------- differential
# Every case in float64 (agreement to rounding); the plain variants in float32 too.
DIFFERENTIAL = [(c, torch.float64) for c in CASES] + [(c, torch.float32) for c in ("sgd", "adam", "adagrad")]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("case", "dtype"), DIFFERENTIAL, ids=[f"{c}-{str(t)[-7:]}" for c, t in DIFFERENTIAL])
def test_matches_reference(case: str, dtype: torch.dtype, device: str) -> None:
    ours_cls, ref_name, kw = CASES[case]
    m1, m2 = _net(dtype, device), _net(dtype, device)
    o1, o2 = ours_cls(m1.parameters(), **kw), _reference(ref_name)(m2.parameters(), **kw)
    _check(_lockstep(m1, o1, m2, o2, STEPS, device, aux_every=3), TOL[dtype])
    assert torch.equal(m1.unused, torch.ones_like(m1.unused)), "a parameter without gradient moved"


def test_free_running_trajectory_matches_reference() -> None:
    """No lockstep: each trains on its own; in float64 the trajectories agree before chaos sets in."""
    for ours_cls, ref_name, kw in (CASES["sgd"], CASES["adam"], CASES["adagrad"]):
        m1, m2 = _net(torch.float64, "cpu"), _net(torch.float64, "cpu")
        d1 = _train(m1, ours_cls(m1.parameters(), **kw), 40, "cpu")
        d2 = _train(m2, _reference(ref_name)(m2.parameters(), **kw), 40, "cpu")
        assert torch.allclose(_flat(m1), _flat(m2), rtol=1e-9, atol=1e-12)
        assert max(abs(a - b) / b for a, b in zip(d1, d2)) < 1e-9


@pytest.mark.parametrize("case", ["sgd", "adam", "adagrad"])
def test_several_groups_match_reference(case: str) -> None:
    """Two groups with their own weight decay / eps / layer_scale, same as the reference."""
    ours_cls, ref_name, kw = CASES[case]
    extra: dict[str, Any] = {"adam": {"layer_scale": 0.5, "eps": 1e-6}, "adagrad": {"eps": 1e-5}}.get(case, {})
    nets = [_net(torch.float64, "cpu") for _ in range(2)]
    opts = []
    for net, cls in zip(nets, (ours_cls, _reference(ref_name))):
        groups = [
            {"params": net.body.parameters()},
            {"params": [*net.head.parameters(), *net.aux.parameters()], **extra},
        ]
        opts.append(cls(groups, **kw))
    errors = _lockstep(nets[0], opts[0], nets[1], opts[1], STEPS, "cpu")
    _check(errors, TOL[torch.float64])
    assert all(g["d"] == errors[2][-1] for g in opts[0].param_groups), "every group should carry the same D"


@pytest.mark.parametrize("case", ["sgd", "adam", "adagrad"])
def test_lr_scheduler_on_top_matches_reference(case: str) -> None:
    """A scheduler scales the lr multiplier; both implementations read it the same way."""
    ours_cls, ref_name, kw = CASES[case]
    nets = [_net(torch.float64, "cpu") for _ in range(2)]
    opts = [cls(net.parameters(), **kw) for net, cls in zip(nets, (ours_cls, _reference(ref_name)))]
    cosine = lambda k: 0.5 + 0.5 * math.cos(math.pi * k / STEPS)
    scheds = tuple(torch.optim.lr_scheduler.LambdaLR(o, cosine) for o in opts)
    _check(_lockstep(nets[0], opts[0], nets[1], opts[1], STEPS, "cpu", scheds=scheds), TOL[torch.float64])
    assert opts[0].param_groups[0]["lr"] < 0.01, "the schedule did not reach the optimizer"


# ----------------------------------------------------------------------------- contract
ALL = [DAdaptSGD, DAdaptAdam, DAdaptAdaGrad, DAdaptDualAveraging]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_state_dict_round_trip_continues_identically(cls: type, device: str) -> None:
    """Save mid-run, load into a fresh model and optimizer: the continuation is bit-identical.

    The checkpoint is taken before a step on which the ``aux`` head has no gradient, so state
    that is carried but not refreshed on that step also has to survive the round trip.
    """
    net = _net(torch.float32, device)
    opt = cls(net.parameters())
    _train(net, opt, 41, device, aux_every=2)
    ckpt = copy.deepcopy({"model": net.state_dict(), "opt": opt.state_dict()})
    d_a = _train(net, opt, 40, device, start=41, aux_every=2)

    net2 = _net(torch.float32, device)
    net2.load_state_dict(ckpt["model"])
    opt2 = cls(net2.parameters())
    opt2.load_state_dict(ckpt["opt"])
    d_b = _train(net2, opt2, 40, device, start=41, aux_every=2)
    assert d_a == d_b
    assert torch.equal(_flat(net), _flat(net2))


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_zero_lr_group_is_frozen_and_mixed_lrs_are_rejected(cls: type) -> None:
    net = _net(torch.float32, "cpu")
    frozen = [p.detach().clone() for p in net.body.parameters()]
    opt = cls([{"params": net.body.parameters(), "lr": 0.0}, {"params": net.head.parameters()}])
    _train(net, opt, 30, "cpu", aux_every=10**9)
    assert all(torch.equal(a, b) for a, b in zip(frozen, net.body.parameters()))
    assert opt.param_groups[0]["d"] > 1e-6, "the trained group should still adapt D"
    bad = cls([{"params": net.body.parameters(), "lr": 0.5}, {"params": net.head.parameters(), "lr": 1.0}])
    _train_step = lambda: _train(net, bad, 1, "cpu")
    with pytest.raises(RuntimeError, match="lr"):
        _train_step()


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_no_gradients_is_a_no_op_and_closure_returns_loss(cls: type) -> None:
    net = _net(torch.float32, "cpu")
    before = _flat(net)
    opt = cls(net.parameters())
    opt.step()  # no parameter has a gradient yet
    assert torch.equal(before, _flat(net)) and opt.param_groups[0]["k"] == 0 and not opt.state
    x, y = _data("cpu", torch.float32)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x, use_aux=False), y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0
    assert opt.param_groups[0]["k"] == 1 and not torch.equal(before, _flat(net))
    assert net.aux.weight not in opt.state and net.unused not in opt.state


def test_zero_gradient_does_not_divide_by_zero() -> None:
    w = nn.Parameter(torch.ones(3))
    for cls in ALL:
        opt = cls([w])
        w.grad = torch.zeros(3)
        opt.step()
        assert torch.equal(w.detach(), torch.ones(3)) and math.isfinite(opt.param_groups[0]["d"])


@pytest.mark.parametrize("kw", [{"lr": 0.0}, {"d0": 0.0}, {"weight_decay": -1.0}, {"growth_rate": 0.5}])
def test_invalid_arguments(kw: dict[str, float]) -> None:
    w = [nn.Parameter(torch.ones(2))]
    for cls in (DAdaptSGD, DAdaptAdam, DAdaptAdaGrad):
        with pytest.raises(ValueError):
            cls(w, **kw)
    with pytest.raises(ValueError):
        DAdaptAdam(w, betas=(0.9, 1.0))
    with pytest.raises(ValueError):
        DAdaptSGD(w, momentum=1.0)


def test_deterministic() -> None:
    runs = []
    for _ in range(2):
        net = _net(torch.float32, "cpu")
        _train(net, DAdaptAdam(net.parameters()), 30, "cpu")
        runs.append(_flat(net))
    assert torch.equal(*runs)


# ----------------------------------------------------------------------------- Algorithm 1
def _lad(seed: int = 0, n: int = 60, dim: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, dim, generator=g, dtype=torch.float64)
    x_star = torch.randn(dim, generator=g, dtype=torch.float64)
    return a, a @ x_star, x_star


def _lad_subgradient(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return a.t() @ torch.sign(a @ x - b) / a.shape[0]


def _algorithm1(a: torch.Tensor, b: torch.Tensor, steps: int, d0: float = 1e-6) -> tuple[torch.Tensor, list[float]]:
    """A direct, unvectorised transcription of the paper's Algorithm 1 on one vector."""
    x0 = torch.zeros(a.shape[1], dtype=torch.float64)
    x, s, d = x0.clone(), torch.zeros_like(x0), d0
    gsq, weighted, ds, gammas = 0.0, 0.0, [], []
    for k in range(steps):
        g = _lad_subgradient(a, b, x)
        gsq += float(g @ g)
        gammas.append(1.0 / math.sqrt(gsq))  # gamma_{k+1}; gamma_0 = gamma_1 = 1/||g_0||
        gamma_k = gammas[k - 1] if k > 0 else gammas[0]
        s = s + d * g
        weighted += gamma_k * d * d * float(g @ g)
        d_hat = (gammas[k] * float(s @ s) - weighted) / (2 * math.sqrt(float(s @ s)))
        d = max(d, d_hat)
        x = x0 - gammas[k] * s
        ds.append(d)
    return x, ds


def test_dual_averaging_matches_algorithm_1_and_lower_bounds_d() -> None:
    a, b, x_star = _lad()
    w = nn.Parameter(torch.zeros(a.shape[1], dtype=torch.float64))
    opt = DAdaptDualAveraging([w])
    ds = []
    for _ in range(400):
        opt.zero_grad()
        (a @ w - b).abs().mean().backward()
        opt.step()
        ds.append(opt.param_groups[0]["d"])
    x_ref, ds_ref = _algorithm1(a, b, 400)
    assert torch.allclose(w.detach(), x_ref, rtol=1e-9, atol=1e-12)
    assert max(abs(p - q) / q for p, q in zip(ds, ds_ref)) < 1e-9
    dist = float(x_star.norm())
    assert max(ds) <= dist, "the estimate must never exceed ||x0 - x*|| (the paper's lower bound)"
    assert ds[-1] > 0.2 * dist, "the estimate should have grown to the scale of D from d0 = 1e-6"


def test_sgd_estimate_at_most_twice_distance_without_momentum() -> None:
    """The SGD variant uses twice the convexity bound, so d <= 2 D when it has no momentum."""
    for seed in range(3):
        a, b, x_star = _lad(seed)
        w = nn.Parameter(torch.zeros(a.shape[1], dtype=torch.float64))
        opt = DAdaptSGD([w])
        for _ in range(300):
            opt.zero_grad()
            (a @ w - b).abs().mean().backward()
            opt.step()
            assert opt.param_groups[0]["d"] <= 2 * float(x_star.norm())
        assert opt.param_groups[0]["d"] > 0.2 * float(x_star.norm())
