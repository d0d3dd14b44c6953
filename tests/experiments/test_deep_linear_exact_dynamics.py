"""The deep-linear exact-dynamics experiment on the harness: right theory per depth, right slope, fair arms.

Each arm's simulated trajectory must be compared with the closed form of *its* depth (the 3-layer
arm against the 2-layer sigmoid fails here), the slope metric must be the log-log fit of the
*simulated* half-learning time against ``s``, every arm of a seed must learn the same problem, and
the quick budget must give identical jobs for one and two worker processes.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch

import zoo.experiments.deep_linear_exact_dynamics as exp
from zoo import harness
from zoo.catalogue import get, repo_root
from zoo.experiments.deep_linear_exact_dynamics import EXPERIMENT
from zoo.harness import Env, JobRecord, Table
from zoo.reproduce import main
from zoo.theory.deep_linear import effective_initial_strength, learning_time, mode_strength_deep

ID = "deep_linear_exact_dynamics"
# What each arm is, independently of the experiment's own table: weight layers and initial strength.
EXPECTED = {"two_layer_random": (2, None), "two_layer_decoupled": (2, "u0"), "three_layer_decoupled": (3, "u0_deep")}


def _spec_cfg(quick: bool = True) -> tuple[dict[str, Any], list[int]]:
    r = get(ID).spec.reproduction
    assert r is not None
    cfg, seeds = dict(r.config), list(r.seeds)
    if quick:
        cfg.update(r.quick.config)
        seeds = list(r.quick.seeds or seeds)
    return cfg, seeds


def _modes(job: dict[str, Any], kind: str, n: int) -> torch.Tensor:
    """A job's stored trajectory ``(points, modes)`` of ``kind`` (sim or theory)."""
    return torch.stack([torch.tensor(job["series"][f"{kind}_{i}"], dtype=torch.float64) for i in range(n)], -1)


def _env() -> Env:
    return Env("cpu", repo_root() / "data", quick=True)


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    """The quick budget through the runner, with one and with two worker processes."""
    root = tmp_path_factory.mktemp("deep_linear")
    out = {}
    for w in (1, 2):
        assert main([ID, "--quick", "--no-progress", "--workers", str(w), "--out", str(root / f"w{w}")]) == 0
        out[w] = {f: json.loads((root / f"w{w}" / f).read_text()) for f in ("jobs.json", "metrics.json", "curves.json")}
    return out


def test_quick_run_is_identical_for_one_and_two_workers(quick_runs: dict[int, dict[str, Any]]) -> None:
    assert quick_runs[1] == quick_runs[2]
    _, seeds = _spec_cfg()
    assert [(j["arm"], j["seed"]) for j in quick_runs[1]["jobs.json"]] == [(a, s) for s in seeds for a in EXPECTED]


def test_quick_run_produces_every_declared_metric_near_the_theory(quick_runs: dict[int, dict[str, Any]]) -> None:
    spec = get(ID).spec
    cfg, seeds = _spec_cfg()
    metrics = quick_runs[1]["metrics.json"]["arms"]
    assert set(metrics) == set(spec.reproduction.arms) == set(EXPECTED)
    for arm in spec.reproduction.arms:
        for metric in spec.reproduction.metrics:
            values = metrics[arm][metric]
            assert len(values) == len(seeds) and all(math.isfinite(v) for v in values), (arm, metric, values)
        # Even the coarse quick budget lands near the theory of the arm's depth.
        assert metrics[arm]["r2_min"][0] > 0.98, arm
        assert metrics[arm]["half_time_err"][0] < 0.1, arm
        assert -1.2 < metrics[arm]["time_slope"][0] < -0.8, arm
    # One trajectory panel per arm (sim + theory per mode) and the half-time panel.
    curves = quick_runs[1]["curves.json"]
    n_modes = len(cfg["singular_values"])
    assert len(curves) == len(EXPECTED) + 1
    for c in curves[:-1]:
        assert len(c["series"]) == 2 * n_modes
        assert all(len(v) == len(c["x"]) for v in c["series"].values())
        assert set(c["style"]) == set(c["series"])
    assert curves[-1]["x"] == pytest.approx(cfg["singular_values"])
    assert len(curves[-1]["series"]) == 2 * len(EXPECTED)


def test_each_arm_is_compared_with_the_theory_of_its_depth(quick_runs: dict[int, dict[str, Any]]) -> None:
    """The analytic trajectory and half-times a job reports are those of its arm's depth and initial strength."""
    cfg, _ = _spec_cfg()
    s = torch.tensor(cfg["singular_values"], dtype=torch.float64)
    for job in quick_runs[1]["jobs.json"]:
        depth, u0_key = EXPECTED[job["arm"]]
        if u0_key is None:  # small random weights: each mode's linearised initial strength
            p = exp._problem(job["seed"], cfg)
            u0 = effective_initial_strength(*p[job["arm"]], p["U"], p["V"])
        else:
            u0 = torch.full_like(s, cfg[u0_key])
        assert job["series"]["u0"] == pytest.approx(u0.tolist(), rel=1e-5)  # series keep six significant digits (zoo.harness)
        t = torch.tensor(job["series"]["t"], dtype=torch.float64)
        theory = _modes(job, "theory", len(s))
        right = mode_strength_deep(t, s, u0, depth)
        torch.testing.assert_close(theory, right, rtol=1e-5, atol=1e-9)  # six-digit series
        assert job["series"]["half_time_theory"] == pytest.approx(learning_time(s, u0, 0.5 * s, depth=depth).tolist(), rel=1e-5)
        # The simulation follows that theory (R^2 over the stored points, per mode) ...
        sim = _modes(job, "sim", len(s))
        assert float(exp._r_squared(sim, right).min()) > 0.98, job["arm"]
        # ... and not the theory of the other depth: the test tells depths apart.
        other = mode_strength_deep(t, s, u0, 5 - depth)
        assert float(exp._r_squared(sim, other).min()) < 0.5, job["arm"]


def test_slope_is_fit_to_simulated_half_times_against_s() -> None:
    """Piecewise-linear rises with half-times s^-0.7 (simulated) vs s^-1 (theory): the metric reads the simulation."""
    s = torch.tensor([4.0, 2.0, 1.0, 0.5], dtype=torch.float64)
    t = torch.linspace(0.0, 10.0, 10001, dtype=torch.float64)
    rise = lambda half: s * (t.unsqueeze(-1) / (2 * half)).clamp(max=1.0)  # noqa: E731 - u(T) = s/2 at T = half
    sim_half, th_half = s.pow(-0.7), s.pow(-1.0)
    metrics, t_half_sim = exp._metrics(t, rise(sim_half), rise(th_half), th_half, s, t_end=10.0)
    torch.testing.assert_close(t_half_sim, sim_half)
    assert metrics["time_slope"] == pytest.approx(-0.7, abs=1e-9)
    assert metrics["half_time_err"] == pytest.approx(float(((sim_half - th_half).abs() / th_half).max()))
    assert metrics["r2_min"] < 1.0
    perfect, _ = exp._metrics(t, rise(sim_half), rise(sim_half), sim_half, s, t_end=10.0)
    assert perfect["r2_min"] == 1.0 and perfect["half_time_err"] == 0.0


def test_jobs_report_the_slope_of_their_own_half_times(quick_runs: dict[int, dict[str, Any]]) -> None:
    for job in quick_runs[1]["jobs.json"]:
        s = torch.tensor(job["series"]["s"], dtype=torch.float64)
        t_half = torch.tensor(job["series"]["half_time_sim"], dtype=torch.float64)
        x = s.log() - s.log().mean()
        slope = float((x * t_half.log()).sum() / x.pow(2).sum())
        assert job["metrics"]["time_slope"] == pytest.approx(slope, rel=1e-5), job["arm"]  # from six-digit series


def test_every_arm_of_a_seed_learns_the_same_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[tuple[int, int], list[torch.Tensor]] = {}
    real_train = exp.train

    def train(model: Any, data: Any, *args: Any, **kw: Any) -> Any:
        seen[(model.depth, len(seen))] = [data.x_train.clone(), data.y_train.clone()]
        return real_train(model, data, *args, **kw)

    monkeypatch.setattr(exp, "train", train)
    cfg = {**_spec_cfg()[0], "singular_values": [3.0, 1.5], "lr": 0.05}
    res = harness.run(EXPERIMENT, cfg, [0, 1], _env(), workers=1)
    # Jobs run seed by seed, in arm order: the depths trained are the arms' depths.
    assert [d for d, _ in seen] == [EXPECTED[a][0] for _ in (0, 1) for a in EXPECTED]
    data = list(seen.values())
    n = len(EXPECTED)
    for seed_block in (data[:n], data[n:]):
        for x, y in seed_block:
            assert torch.equal(x, seed_block[0][0]) and torch.equal(y, seed_block[0][1])
    assert not torch.equal(data[0][0], data[n][0])  # different seeds, different problems
    assert res.metrics["two_layer_random"]["r2_min"][0] != res.metrics["two_layer_random"]["r2_min"][1]


def test_curves_average_each_mode_over_seeds() -> None:
    cfg = {"singular_values": [4.0, 2.0, 1.0]}
    half = {0: [1.0, 2.0, 4.0], 1: [3.0, 4.0, 8.0]}
    records = []
    for k, arm in enumerate(EXPECTED):
        for seed in (0, 1):
            series = {"t": [0.0, 1.0], "s": cfg["singular_values"], "u0": [1e-6] * 3,
                      "half_time_sim": [v * (k + 1) for v in half[seed]], "half_time_theory": [1.0, 2.0, 3.0 + seed]}
            series.update({f"sim_{i}": [0.0, float(seed)] for i in range(3)})
            series.update({f"theory_{i}": [0.0, 10.0 + seed] for i in range(3)})
            records.append(JobRecord(arm, seed, {}, series))
    curves = EXPERIMENT.curves(cfg, Table([0, 1], records))
    panel = curves[-1]
    assert panel.x == cfg["singular_values"]
    assert panel.series["two_layer_random sim"] == pytest.approx([2.0, 3.0, 6.0])
    assert panel.series["three_layer_decoupled sim"] == pytest.approx([6.0, 9.0, 18.0])
    assert panel.series["two_layer_decoupled theory"] == pytest.approx([1.0, 2.0, 3.5])
    # Trajectory panels show the first seed.
    assert curves[0].title.startswith("two_layer_random, seed 0")
    assert curves[0].series["sim s=4.00"] == [0.0, 0.0] and curves[0].series["theory s=4.00"] == [0.0, 10.0]
