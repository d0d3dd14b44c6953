"""Tests for zoo.optim.d_adaptation.

* differential tests against the authors' package (``dadaptation==3.2``): same model, data,
  seeds and hyper-parameters, parameters and the D estimate agree over 100 steps (skipped, alone,
  when the package is missing);
* hand-derived values that need no reference: the first steps on linear functions worked out
  on paper (the d update's numerator and denominator, growth cap, lr, momentum, Adam's bias
  correction), and the SGD estimate recomputed from the paper's bound on the observed iterates;
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

try:
    import dadaptation
except ImportError:  # only the differential tests need the reference package
    dadaptation = None
needs_reference = pytest.mark.skipif(dadaptation is None, reason="the reference package dadaptation is not installed")

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


@needs_reference
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("case", "dtype"), DIFFERENTIAL, ids=[f"{c}-{str(t)[-7:]}" for c, t in DIFFERENTIAL])
def test_matches_reference(case: str, dtype: torch.dtype, device: str) -> None:
    ours_cls, ref_name, kw = CASES[case]
    m1, m2 = _net(dtype, device), _net(dtype, device)
    o1, o2 = ours_cls(m1.parameters(), **kw), _reference(ref_name)(m2.parameters(), **kw)
    _check(_lockstep(m1, o1, m2, o2, STEPS, device, aux_every=3), TOL[dtype])
    assert torch.equal(m1.unused, torch.ones_like(m1.unused)), "a parameter without gradient moved"


@needs_reference
def test_free_running_trajectory_matches_reference() -> None:
    """No lockstep: each trains on its own; in float64 the trajectories agree before chaos sets in."""
    for ours_cls, ref_name, kw in (CASES["sgd"], CASES["adam"], CASES["adagrad"]):
        m1, m2 = _net(torch.float64, "cpu"), _net(torch.float64, "cpu")
        d1 = _train(m1, ours_cls(m1.parameters(), **kw), 40, "cpu")
        d2 = _train(m2, _reference(ref_name)(m2.parameters(), **kw), 40, "cpu")
        assert torch.allclose(_flat(m1), _flat(m2), rtol=1e-9, atol=1e-12)
        assert max(abs(a - b) / b for a, b in zip(d1, d2)) < 1e-9


@needs_reference
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


@needs_reference
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


# ----------------------------------------------------------------------------- hand-derived values
def _constant_gradient_run(opt_fn: Any, grad: list[float], steps: int) -> tuple[list[float], list[list[float]]]:
    """Steps on the linear function <g, x> from x0 = 0: the D estimate and the iterate after each."""
    w = nn.Parameter(torch.zeros(len(grad), dtype=torch.float64))
    opt = opt_fn([w])
    ds, xs = [], []
    for _ in range(steps):
        w.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
        ds.append(opt.param_groups[0]["d"])
        xs.append(w.detach().tolist())
    return ds, xs


def test_sgd_by_hand_on_a_linear_function() -> None:
    """f(x) = x, d0 = 1: the step is l_k = d_k lr / |g_0| = d_k lr, s_k = sum_i l_i, and
    dhat_{k+1} = 2 sum_i l_i <g_i, s_i> / |s_{k+1}|:

    k = 0: numerator 0, s = 1 -> d = 1;    k = 1: numerator 1, s = 2, dhat = 1 -> d = 1;
    k = 2: numerator 3, s = 3, dhat = 2;   k = 3: numerator 3 + 2*3 = 9, s = 5, dhat = 18/5;
    k = 4: numerator 9 + 3.6*5 = 27, s = 8.6, dhat = 54/8.6. Without momentum x = -s.
    """
    ds, xs = _constant_gradient_run(lambda p: DAdaptSGD(p, d0=1.0), [1.0], 5)
    assert ds == pytest.approx([1.0, 1.0, 2.0, 3.6, 54 / 8.6], rel=1e-14)
    assert [x[0] for x in xs] == pytest.approx([-1.0, -2.0, -3.0, -5.0, -8.6], rel=1e-14)
    # growth_rate 1.5: k = 2 gives min(2, 1.5); k = 3: numerator 3 + 1.5*3, s = 4.5, dhat = 15/4.5 > 1.5^2.
    ds, xs = _constant_gradient_run(lambda p: DAdaptSGD(p, d0=1.0, growth_rate=1.5), [1.0], 4)
    assert ds == pytest.approx([1.0, 1.0, 1.5, 2.25], rel=1e-14)
    assert [x[0] for x in xs] == pytest.approx([-1.0, -2.0, -3.0, -4.5], rel=1e-14)
    # lr = 0.5 halves every step, and the numerator with it: s = 0.5, 1, 1.5, 2; dhat = 0, .5, 1, 1.5.
    ds, xs = _constant_gradient_run(lambda p: DAdaptSGD(p, d0=1.0, lr=0.5), [1.0], 4)
    assert ds == pytest.approx([1.0, 1.0, 1.0, 1.5], rel=1e-14)
    assert [x[0] for x in xs] == pytest.approx([-0.5, -1.0, -1.5, -2.0], rel=1e-14)
    # momentum 0.5: x <- x/2 + z/2 with z = -s = -1, -2, -3.
    _, xs = _constant_gradient_run(lambda p: DAdaptSGD(p, d0=1.0, momentum=0.5), [1.0], 3)
    assert [x[0] for x in xs] == pytest.approx([-0.5, -1.25, -2.125], rel=1e-14)
    # The step is normalised by |g_0|: scaling the gradient changes nothing.
    ds, xs = _constant_gradient_run(lambda p: DAdaptSGD(p, d0=1.0), [3.0, -4.0], 4)
    assert ds == pytest.approx([1.0, 1.0, 2.0, 3.6], rel=1e-14)
    assert xs[-1] == pytest.approx([-5.0 * 0.6, 5.0 * 0.8], rel=1e-14)


def test_sgd_estimate_is_the_papers_bound_on_the_observed_iterates() -> None:
    """Without momentum, d_{k+1} = max(d_k, 2 sum_i l_i <g_i, x0 - x_i> / ||x0 - x_{k+1}||), l_i = d_i / ||g_0||.

    Everything on the right is observed from outside the optimizer (iterates, gradients, d).
    """
    a, b, _ = _lad(seed=5)
    w = nn.Parameter(torch.zeros(a.shape[1], dtype=torch.float64))
    opt = DAdaptSGD([w])
    x0 = w.detach().clone()
    total, g0_norm, d = 0.0, None, opt.param_groups[0]["d"]
    for _ in range(150):
        x = w.detach().clone()
        opt.zero_grad()
        (a @ w - b).abs().mean().backward()
        g = w.grad.detach().clone()
        g0_norm = float(g.norm()) if g0_norm is None else g0_norm
        total += d / g0_norm * float(g @ (x0 - x))
        opt.step()
        want = max(d, 2.0 * total / float((x0 - w.detach()).norm()))
        d = opt.param_groups[0]["d"]
        assert d == pytest.approx(want, rel=1e-10)
    assert d > 100 * 1e-6  # the bound did grow the estimate


def test_adam_first_two_steps_by_hand() -> None:
    """DAdaptAdam on <g, x>, g = (3, -4), d0 = 0.01, betas (0.9, 0.999).

    Step 1: the numerator and s start at 0, so d stays d0 and x1 = -(1 - b1) l_0 g / (sqrt(1 - b2)|g| + eps),
    about -3.16 d0 sign(g), or -d0 sign(g) with bias correction (l_0 = d0 sqrt(1 - b2)/(1 - b1)).
    Step 2: numerator (1 - sqrt b2)^2 l_1 l_0 sum g^2/A_1, s_2 = (1 - sqrt b2)(sqrt(b2) l_0 + l_1) g, so
    dhat = l_0 l_1 / (sqrt(b2) l_0 + l_1) * sum(g^2 / A_1) / sum|g|, with A_1 = sqrt(1 - b2)|g| + eps.
    """
    g = torch.tensor([3.0, -4.0], dtype=torch.float64)
    b1, b2, d0 = 0.9, 0.999, 1e-2
    for bias_correction, lr, eps in ((False, 1.0, 1e-8), (True, 1.0, 1e-8), (False, 0.5, 1e-8), (True, 1.0, 0.05)):
        bc = (lambda k: math.sqrt(1 - b2**k) / (1 - b1**k)) if bias_correction else (lambda k: 1.0)
        l0, l1 = d0 * lr * bc(1), d0 * lr * bc(2)
        a1 = math.sqrt(1 - b2) * g.abs() + eps
        x1 = -(1 - b1) * l0 * g / a1
        dhat = l0 * l1 / (math.sqrt(b2) * l0 + l1) * float((g * g / a1).sum() / g.abs().sum())
        ds, xs = _constant_gradient_run(
            lambda p: DAdaptAdam(p, lr=lr, eps=eps, d0=d0, use_bias_correction=bias_correction), g.tolist(), 2
        )
        assert ds[0] == d0
        assert xs[0] == pytest.approx(x1.tolist(), rel=1e-12)
        assert ds[1] == pytest.approx(max(d0, dhat), rel=1e-12)
        if eps == 1e-8:  # the sign-like first step: (1 - b1)/sqrt(1 - b2) = 3.162 d0 lr, or d0 lr corrected
            size = d0 * lr * (1.0 if bias_correction else 0.1 / math.sqrt(0.001))
            assert xs[0] == pytest.approx([-size, size], rel=1e-6)
    # The growth cap applies to Adam's estimate too: dhat ~ 15.8 d0 is cut to 2 d0.
    ds, _ = _constant_gradient_run(lambda p: DAdaptAdam(p, d0=d0, growth_rate=2.0), g.tolist(), 2)
    assert ds[1] == pytest.approx(2 * d0, rel=1e-14)


def test_adagrad_first_steps_by_hand() -> None:
    """DAdaptAdaGrad on <g, x> with d0 = 1: a_k = 1e-6 + k g^2, A_k = sqrt(a_k) + eps, s_k = k l g, l = d0 lr.

    dhat_k = (||s_k||^2_{A_k^-1} - l^2 sum_{i<=k} ||g||^2_{A_i^-1}) / ||s_k||_1
           = l (k^2 sum(g^2/A_k) - sum_i sum(g^2/A_i)) / (k sum|g|),
    which stays below d0 for k = 1, 2, 3 and first exceeds it at k = 4 (about 1.30 l); x_k = -s_k / A_k.
    """
    eps = 1e-6
    for g, lr in (([1.0], 1.0), ([2.0, -0.5], 0.5)):
        gt = torch.tensor(g, dtype=torch.float64)
        l = lr
        A = [torch.sqrt(1e-6 + k * gt * gt) + eps for k in range(1, 5)]
        terms = [float((gt * gt / a).sum()) for a in A]
        dhats = [l * (k * k * terms[k - 1] - sum(terms[:k])) / (k * float(gt.abs().sum())) for k in range(1, 5)]
        assert max(dhats[:3]) < 1.0  # so l stays d0 lr for the four steps
        ds, xs = _constant_gradient_run(lambda p: DAdaptAdaGrad(p, lr=lr, d0=1.0), g, 4)
        assert ds == pytest.approx([max(1.0, dh) for dh in dhats], rel=1e-12)
        for k in range(4):
            assert xs[k] == pytest.approx((-(k + 1) * l * gt / A[k]).tolist(), rel=1e-12)
        if lr == 1.0:  # 1-D, g = 1: A_k ~ sqrt k, so dhat_4 ~ (16/2 - 1 - 1/sqrt 2 - 1/sqrt 3 - 1/2) / 4
            assert ds[3] == pytest.approx((8 - 1 - 2**-0.5 - 3**-0.5 - 0.5) / 4, rel=1e-5)
            assert ds[3] > 1.3


@pytest.mark.parametrize("cls", [DAdaptSGD, DAdaptAdam, DAdaptAdaGrad], ids=lambda c: c.__name__)
def test_growth_rate_caps_the_estimate(cls: type) -> None:
    """d_{k+1} <= growth_rate d_k at every step, and the cap binds (uncapped, d grows faster)."""
    a, b, _ = _lad()
    ratios = {}
    for rate in (float("inf"), 1.05):
        w = nn.Parameter(torch.zeros(a.shape[1], dtype=torch.float64))
        opt = cls([w], growth_rate=rate)
        ds = [opt.param_groups[0]["d"]]
        for _ in range(200):
            opt.zero_grad()
            (a @ w - b).abs().mean().backward()
            opt.step()
            ds.append(opt.param_groups[0]["d"])
        ratios[rate] = [q / p for p, q in zip(ds[:-1], ds[1:])]
    assert max(ratios[float("inf")]) > 1.2
    assert max(ratios[1.05]) <= 1.05 * (1 + 1e-12)
    assert sum(abs(r - 1.05) < 1e-9 for r in ratios[1.05]) > 10


def test_dual_averaging_first_step_by_hand() -> None:
    """x_1 = x0 - gamma_1 s_1 = x0 - lr d0 g0 / ||g0||; d stays d0 (dhat ~ ||s_1||^2 - d0^2 ||g0||^2 = 0)."""
    w = nn.Parameter(torch.tensor([1.0, -1.0], dtype=torch.float64))
    opt = DAdaptDualAveraging([w], lr=2.0, d0=0.1)
    w.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)
    opt.step()
    assert w.detach().tolist() == pytest.approx([1.0 - 0.12, -1.0 - 0.16], rel=1e-14)
    assert opt.param_groups[0]["d"] == 0.1
    # Step 2, same gradient: s_2 = 2 d0 g (||s_2|| = 1), gamma_2 = lr / (5 sqrt 2), gamma_0 = gamma_1 = 2/5:
    # dhat = (gamma_2 ||s_2||^2 - d0^2 (gamma_0 + gamma_1) ||g||^2) / (2 ||s_2||) = (0.2828 - 0.2) / 2 < d0.
    w.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)
    opt.step()
    g2 = 2.0 / (5.0 * math.sqrt(2.0))
    dhat = (g2 - 0.01 * 0.8 * 25) / 2
    assert dhat == pytest.approx(0.0414, abs=1e-4)
    assert opt.param_groups[0]["d"] == 0.1
    assert w.detach().tolist() == pytest.approx([1.0 - g2 * 0.2 * 3, -1.0 - g2 * 0.2 * 4], rel=1e-14)


def _adam_transcription(
    g: float, steps: int, d0: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> list[tuple[float, float]]:
    """The version-3 DAdaptAdam recurrences of the module docstring, in plain floats, for f(x) = g x."""
    x = m = v = s = numerator = 0.0
    d, out, rb2 = d0, [], math.sqrt(b2)
    for _ in range(steps):
        l = d
        numerator = rb2 * numerator + (1 - rb2) * l * g * s / (math.sqrt(v) + eps)
        m = b1 * m + (1 - b1) * l * g
        v = b2 * v + (1 - b2) * g * g
        s = rb2 * s + (1 - rb2) * l * g
        d = max(d, numerator / ((1 - rb2) * abs(s)))
        x -= m / (math.sqrt(v) + eps)
        out.append((d, x))
    return out


def test_adam_matches_a_scalar_transcription_and_applies_layer_scale_and_decay() -> None:
    """Six steps on f(x) = 2x: the numerator's sqrt(b2) decay, b1's momentum and d's growth, all by hand."""
    ds, xs = _constant_gradient_run(lambda p: DAdaptAdam(p, d0=1e-3), [2.0], 6)
    want = _adam_transcription(2.0, 6, 1e-3)
    assert ds == pytest.approx([d for d, _ in want], rel=1e-12)
    assert [x[0] for x in xs] == pytest.approx([x for _, x in want], rel=1e-12)
    assert ds[-1] > 100 * 1e-3
    # layer_scale r scales the group's step (d is unchanged: r cancels in the ratio).
    w = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = DAdaptAdam([{"params": [w], "layer_scale": 0.5}], d0=1e-3)
    for _ in range(6):
        w.grad = torch.tensor([2.0], dtype=torch.float64)
        opt.step()
    assert opt.param_groups[0]["d"] == pytest.approx(ds[-1], rel=1e-12)
    assert float(w.detach()) == pytest.approx(0.5 * xs[-1][0], rel=1e-12)
    # Weight decay at x0 = 1, g = 2, d0 = 0.01: coupled adds 0.1 x to g; decoupled shrinks x by 1 - 0.1 d0.
    for decouple in (False, True):
        w = nn.Parameter(torch.ones(1, dtype=torch.float64))
        opt = DAdaptAdam([w], d0=0.01, weight_decay=0.1, decouple=decouple)
        w.grad = torch.tensor([2.0], dtype=torch.float64)
        opt.step()
        g = 2.0 if decouple else 2.1
        shrink = 1 - 0.1 * 0.01 if decouple else 1.0
        assert float(w.detach()) == pytest.approx(shrink - 0.1 * 0.01 * g / (math.sqrt(0.001) * g + 1e-8), rel=1e-12)


def test_weight_decay_and_momentum_first_steps_by_hand() -> None:
    """x0 = 1, g = 1, d0 = 0.1, weight_decay 0.5: the step uses g + 0.5 x = 1.5 (||g_0|| stays the raw 1)."""
    w = nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = DAdaptSGD([w], d0=0.1, weight_decay=0.5)
    w.grad = torch.ones(1, dtype=torch.float64)
    opt.step()
    assert float(w.detach()) == pytest.approx(1.0 - 0.1 * 1.5, rel=1e-14)
    # AdaGrad: x1 = x0 - d0 g_eff / (sqrt(1e-6 + g_eff^2) + eps), with momentum b: x1 = b x0 + (1 - b) z1.
    for momentum, decay in ((0.0, 0.5), (0.5, 0.0), (0.5, 0.5)):
        w = nn.Parameter(torch.ones(1, dtype=torch.float64))
        opt = DAdaptAdaGrad([w], d0=0.1, momentum=momentum, weight_decay=decay)
        w.grad = torch.ones(1, dtype=torch.float64)
        opt.step()
        g = 1.0 + decay
        z = 1.0 - 0.1 * g / (math.sqrt(1e-6 + g * g) + 1e-6)
        assert float(w.detach()) == pytest.approx(momentum * 1.0 + (1 - momentum) * z, rel=1e-12)
