"""The deep-linear exact-dynamics experiment: quick budget end to end, determinism, batched seeds."""

from __future__ import annotations

import math

import pytest

from zoo.catalogue import get, repo_root
from zoo.experiment import RunContext
from zoo.experiments.deep_linear_exact_dynamics import run

ID = "deep_linear_exact_dynamics"


def _quick() -> tuple[dict, list[int]]:
    r = get(ID).spec.reproduction
    assert r is not None
    return {**r.config, **r.quick.config}, list(r.quick.seeds or r.seeds)


def _ctx(seeds: list[int]) -> RunContext:
    return RunContext(device="cpu", seeds=seeds, data_dir=repo_root() / "data", quick=True)


def test_quick_run_produces_every_declared_metric_deterministically() -> None:
    spec = get(ID).spec
    cfg, seeds = _quick()
    res = run(cfg, _ctx(seeds))
    for arm in spec.reproduction.arms:
        for metric in spec.reproduction.metrics:
            values = res.metrics[arm][metric]
            assert len(values) == len(seeds), (arm, metric)
            assert all(math.isfinite(v) for v in values), (arm, metric, values)
    # Even the coarse quick budget lands near the theory; a broken simulation or formula would not.
    for arm, m in res.metrics.items():
        assert m["r2_min"][0] > 0.9, arm
        assert m["half_time_err"][0] < 0.2, arm
        assert -1.3 < m["time_slope"][0] < -0.7, arm
    # One trajectory panel per arm (sim + theory per mode) and the half-time panel.
    n_modes = len(cfg["singular_values"])
    assert len(res.curves) == len(spec.reproduction.arms) + 1
    for curve in res.curves[:-1]:
        assert len(curve.series) == 2 * n_modes
        assert all(len(v) == len(curve.x) for v in curve.series.values())
        assert set(curve.style) == set(curve.series)
    half = res.curves[-1]
    assert half.x == pytest.approx(sorted(cfg["singular_values"], reverse=True))
    assert len(half.series) == 2 * len(spec.reproduction.arms)
    # Same seed, same numbers.
    assert run(cfg, _ctx(seeds)).metrics == res.metrics


def test_seeds_trained_together_match_a_seed_trained_alone() -> None:
    cfg, _ = _quick()
    cfg = {**cfg, "singular_values": [3.0, 1.5], "lr": 0.05}
    both = run(cfg, _ctx([0, 1])).metrics
    for i, seed in enumerate([0, 1]):
        alone = run(cfg, _ctx([seed])).metrics
        for arm in alone:
            for metric, values in alone[arm].items():
                # Only the (irrelevant) order of the full batch may differ: round-off level.
                assert both[arm][metric][i] == pytest.approx(values[0], rel=1e-9, abs=1e-12), (arm, metric, seed)
    # Different seeds are different problems.
    assert both["two_layer_random"]["r2_min"][0] != both["two_layer_random"]["r2_min"][1]
