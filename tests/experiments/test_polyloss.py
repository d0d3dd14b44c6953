"""The PolyLoss experiment: quick budget end to end, determinism, and the vectorised arms."""

from __future__ import annotations

import math

import torch

from zoo.catalogue import get, repo_root
from zoo.experiment import RunContext
from zoo.experiments.polyloss import _arm_losses, _StackedMLP, run
from zoo.losses.polyloss import poly1_cross_entropy
from zoo.training import MLP


def _quick() -> tuple[dict, list[int]]:
    r = get("polyloss").spec.reproduction
    assert r is not None
    return {**r.config, **r.quick.config}, list(r.quick.seeds or r.seeds)


def test_quick_run_produces_every_declared_metric() -> None:
    spec = get("polyloss").spec
    cfg, seeds = _quick()
    ctx = RunContext(device="cpu", seeds=seeds, data_dir=repo_root() / "data", quick=True)
    res = run(cfg, ctx)
    for arm in spec.reproduction.arms:
        for metric in spec.reproduction.metrics:
            values = res.metrics[arm][metric]
            assert len(values) == len(seeds), (arm, metric)
            assert all(math.isfinite(v) for v in values), (arm, metric, values)
    assert 0.0 <= res.metrics["ce"]["test_acc"][0] <= 100.0
    assert 0.0 < res.metrics["ce"]["train_pt"][0] < 1.0
    assert len(res.curves) == 2
    for curve in res.curves:
        assert len(curve.series) == len(spec.reproduction.arms)
        assert all(len(v) == cfg["epochs"] == len(curve.x) for v in curve.series.values())
    # Same seed, same numbers.
    assert run(cfg, ctx).metrics == res.metrics


def test_stacked_arms_train_like_separate_models() -> None:
    """One stacked model with per-arm epsilon == separate MLPs each trained on its own Poly-1."""
    torch.manual_seed(0)
    base = MLP(6, [8], 3).double()
    eps = [0.0, 2.0, -1.0]
    stacked = _StackedMLP(base, len(eps))
    singles = [MLP(6, [8], 3).double() for _ in eps]
    for m in singles:
        m.load_state_dict(base.state_dict())
    kw = dict(lr=0.1, momentum=0.9, weight_decay=1e-3)
    opt = torch.optim.SGD(stacked.parameters(), foreach=True, **kw)
    opts = [torch.optim.SGD(m.parameters(), **kw) for m in singles]
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        x = torch.randn(10, 6, generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (10,), generator=g)
        opt.zero_grad()
        _arm_losses(stacked(x), y, torch.tensor(eps, dtype=torch.float64)).sum().backward()
        opt.step()
        for m, o, e in zip(singles, opts, eps):
            o.zero_grad()
            poly1_cross_entropy(m(x), y, epsilon=e).backward()
            o.step()
    x = torch.randn(4, 6, generator=g, dtype=torch.float64)
    out = stacked(x)
    for i, m in enumerate(singles):
        torch.testing.assert_close(out[i], m(x))
    # The arms really did diverge: epsilon changes training.
    assert not torch.allclose(out[0], out[1])
