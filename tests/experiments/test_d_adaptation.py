"""Tests for zoo.experiments.d_adaptation: the quick budget end to end, and its building blocks."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from zoo.catalogue import get, repo_root
from zoo.experiment import RunContext
from zoo.experiments.d_adaptation import Members, _BoundTracker, lad_problem, run


def _quick() -> tuple[dict, list[int]]:
    r = get("d_adaptation").spec.reproduction
    assert r is not None
    cfg = {**r.config, **r.quick.config}
    return cfg, list(r.quick.seeds or r.seeds)


def test_quick_run_produces_every_declared_metric() -> None:
    spec = get("d_adaptation").spec
    cfg, seeds = _quick()
    result = run(cfg, RunContext(device="cpu", seeds=seeds, data_dir=repo_root() / "data", quick=True))
    assert set(result.metrics) == set(spec.reproduction.arms)
    for arm in spec.reproduction.arms:
        for metric in spec.reproduction.metrics:
            values = result.metrics[arm][metric]
            assert len(values) == len(seeds), f"{arm}.{metric}: {len(values)} values for {len(seeds)} seeds"
            assert all(math.isfinite(v) for v in values), f"{arm}.{metric} = {values}"
    assert 0.0 <= result.metrics["dadapt_adam"]["test_acc"][0] <= 100.0
    assert len(result.curves) == 4
    for c in result.curves:
        assert c.series and all(len(ys) == len(c.x) for ys in c.series.values()), c.title


def test_quick_run_is_deterministic() -> None:
    cfg, _ = _quick()
    cfg = {**cfg, "epochs": 1, "n_train": 300, "convex_steps": 40}
    ctx = RunContext(device="cpu", seeds=[3], data_dir=repo_root() / "data", quick=True)
    assert run(cfg, ctx).metrics == run(cfg, ctx).metrics


def test_members_are_independent_runs_with_their_own_lr() -> None:
    """One Members module with a parameter group per lr == separate runs (same init, same data)."""
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    lrs = [1e-3, 3e-2]
    grid = Members(base, len(lrs))
    opt = torch.optim.Adam([{"params": m.parameters(), "lr": lr} for m, lr in zip(grid.members, lrs)])
    singles = [copy.deepcopy(base) for _ in lrs]
    opts = [torch.optim.Adam(m.parameters(), lr=lr) for m, lr in zip(singles, lrs)]
    for _ in range(10):
        opt.zero_grad()
        out = grid(x)
        nn.functional.cross_entropy(out.flatten(0, 1), y.repeat(len(lrs)), reduction="sum").div(64).backward()
        opt.step()
        for m, o in zip(singles, opts):
            o.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            o.step()
    for member, single in zip(grid.members, singles):
        for p, q in zip(member.parameters(), single.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(grid.members[0][0].weight, grid.members[1][0].weight)


def test_lad_problem_has_known_minimiser() -> None:
    a, b, x_star = lad_problem(0, n=50, dim=5)
    assert a.dtype == torch.float64 and torch.linalg.matrix_rank(a) == 5
    assert (a @ x_star - b).abs().max() < 1e-12  # f(x*) = 0 = f*


def test_bound_tracker_lower_bounds_distance_for_fixed_step_sgd() -> None:
    a, b, x_star = lad_problem(1, n=100, dim=8)
    w = nn.Parameter(torch.zeros(8, dtype=torch.float64))
    opt = torch.optim.SGD([w], lr=0.05)
    tracker = _BoundTracker(opt, 2.0)
    for _ in range(300):
        opt.zero_grad()
        (a @ w - b).abs().mean().backward()
        opt.step()
    bounds = torch.stack(tracker.history)[:, 0]
    dist = float(x_star.norm())
    assert bounds.max() <= dist and bounds[-1] > 0.1 * dist
    assert (bounds[1:] >= bounds[:-1]).all(), "the running maximum must be monotone"
