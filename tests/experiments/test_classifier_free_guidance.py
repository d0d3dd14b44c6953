"""The classifier-free guidance experiment: quick budget end to end, determinism and its metric helpers."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.catalogue import get, repo_root
from zoo.experiment import RunContext
from zoo.experiments.classifier_free_guidance import arm_name, frechet_distance, make_gmm, run, sample_metrics


def _quick() -> tuple[dict, list[int]]:
    r = get("classifier_free_guidance").spec.reproduction
    assert r is not None
    return {**r.config, **r.quick.config}, list(r.quick.seeds or r.seeds)


def test_quick_run_produces_every_declared_metric() -> None:
    spec = get("classifier_free_guidance").spec
    cfg, seeds = _quick()
    ctx = RunContext(device="cpu", seeds=seeds, data_dir=repo_root() / "data", quick=True)
    res = run(cfg, ctx)
    assert set(res.metrics) == set(spec.reproduction.arms)
    for arm in spec.reproduction.arms:
        for metric in spec.reproduction.metrics:
            values = res.metrics[arm][metric]
            assert len(values) == len(seeds), (arm, metric)
            assert all(math.isfinite(v) for v in values), (arm, metric, values)
            if metric == "class_acc":
                assert 0.0 <= values[0] <= 100.0
    # The arms the spec names are exactly the ones the sweep builds.
    assert {arm_name(d, w) for d in cfg["datasets"] for w in cfg["guidance_weights"]} <= set(res.metrics)
    titles = [c.title for c in res.curves]
    assert any("Class consistency" in t for t in titles) and any("Diversity" in t for t in titles)
    for curve in res.curves[:3]:
        assert curve.x == [float(w) for w in cfg["guidance_weights"]]
        assert all(len(v) == len(curve.x) for v in curve.series.values())


def test_same_seed_same_metrics() -> None:
    cfg, _ = _quick()
    cfg = {**cfg, "datasets": ["gmm"], "gmm_epochs": 2, "sample_steps": 10}
    ctx = RunContext(device="cpu", seeds=[3], data_dir=repo_root() / "data", quick=True)
    assert run(cfg, ctx).metrics == run(cfg, ctx).metrics


def test_frechet_distance_of_diagonal_gaussians() -> None:
    mu1, mu2 = torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([2.0, 1.0], dtype=torch.float64)
    c1, c2 = (
        torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64)),
        torch.diag(torch.tensor([9.0, 4.0], dtype=torch.float64)),
    )
    # |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2 = 4 + (1 - 3)^2 + 0
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(8.0, abs=1e-9)
    assert frechet_distance(mu1, c1, mu1, c1) == pytest.approx(0.0, abs=1e-9)


def test_sample_metrics_on_real_and_collapsed_samples() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = make_gmm(3, 1.25, 1.0, 6000, g)
    means = torch.stack([x[y == k].mean(0) for k in range(3)])
    nearest = lambda z: -torch.cdist(z, means)  # a fixed nearest-mean "classifier" (logits)
    ident = lambda z: z
    same = sample_metrics(x, y, nearest, ident, x, y, 3)
    assert same["diversity"] == pytest.approx(1.0) and same["fd"] == pytest.approx(0.0, abs=1e-9)
    assert 70.0 < same["class_acc"] < 85.0  # overlapping classes: about the Bayes accuracy of 77%
    # Samples shrunk halfway to their class mean: half the spread, perfectly class-consistent near the mean.
    shrunk = means[y] + 0.5 * (x - means[y])
    m = sample_metrics(shrunk, y, nearest, ident, x, y, 3)
    assert m["diversity"] == pytest.approx(0.5, rel=1e-6)
    assert m["fd"] > 0.05 and m["class_acc"] > same["class_acc"]
