"""Wiring tests for zoo.experiments.d_adaptation: they fail when the experiment is mis-wired.

* the tuned baselines follow the VALIDATION mean (a hand-made table where validation and test
  disagree), the convex baseline the lowest gap;
* every arm builds the optimizer it claims (type, lr, bias correction, momentum, schedule), and
  the reference arms really step the authors' ``dadaptation`` classes;
* on one quick seed the arms differ where they should (bias correction, learning rates) and our
  implementation matches the authors' where it should;
* a quick run is identical with one and with two worker processes, and produces every metric
  that the spec's claims need;
* the convex problem and the lower bound tracked along fixed-step iterates.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

import pytest
import torch

from zoo.catalogue import get, repo_root
from zoo.harness import Env, JobContext, JobRecord, Table, run
from zoo.optim.d_adaptation import DAdaptAdam, DAdaptDualAveraging, DAdaptSGD
from zoo.experiments import d_adaptation as exp

dadaptation = pytest.importorskip("dadaptation")


def _quick() -> tuple[dict, list[int]]:
    r = get("d_adaptation").spec.reproduction
    assert r is not None
    return {**r.config, **r.quick.config}, list(r.quick.seeds or r.seeds)


def _env() -> Env:
    return Env("cpu", repo_root() / "data", quick=True)


def _tiny() -> dict[str, Any]:
    """The quick config, smaller still: for tests that run single jobs."""
    cfg, _ = _quick()
    return {**cfg, "epochs": 1, "n_train": 400, "n_test": 200, "convex_steps": 30}


# ----------------------------------------------------------------------------- selection
def _hand_table(cfg: dict[str, Any]) -> Table:
    """Grid jobs whose validation and test rankings disagree.

    Adam grid (3 points): validation ranks the middle point first, test ranks the last point
    first, and the first point is the worst on both. The convex grid: the lowest gap is the last.
    """
    seeds = [0, 1, 2]
    recs = []
    val = {0: 50.0, 1: 70.0, 2: 60.0}
    test = {0: 40.0, 1: 55.0, 2: 80.0}
    gap = {0: -1.0, 1: -2.0, 2: -3.0}
    for fam in ("adam", "sgd"):
        for i, arm in enumerate(exp._grid(cfg, fam, "mlp")):
            lr = float(cfg[f"{fam}_lrs"][i])
            for s in seeds:
                # Per-seed noise that keeps the means' order: selection is by the mean.
                recs.append(JobRecord(arm, s, {"val_acc": val[i] + s, "test_acc": test[i] - s, "base_lr": lr}))
        for i, arm in enumerate(exp._grid(cfg, fam, "convex")):
            for s in seeds:
                recs.append(JobRecord(arm, s, {"convex_gap": gap[i] + 0.1 * s, "d_ratio": 0.1 * (i + 1),
                                               "d_ratio_max": 0.2 * (i + 1)}))
    return Table(seeds, recs)


def test_baselines_are_picked_by_validation_not_test() -> None:
    cfg = {"adam_lrs": [1e-3, 1e-2, 1e-1], "sgd_lrs": [0.01, 0.1, 1.0],
           "convex_adam_lrs": [0.01, 0.03, 0.1], "convex_sgd_lrs": [0.01, 0.03, 0.1]}
    derived = exp._derive(cfg, _hand_table(cfg))
    assert set(derived) == {"adam_best", "sgd_best"}
    for fam in ("adam", "sgd"):
        best = derived[f"{fam}_best"]
        # The validation-best grid point (the middle one), its test accuracy per seed ...
        assert best["base_lr"] == [float(cfg[f"{fam}_lrs"][1])] * 3
        assert best["val_acc"] == [70.0, 71.0, 72.0]
        assert best["test_acc"] == [55.0, 54.0, 53.0], "not the test-best (80) nor the worst (40) grid point"
        # ... and on the convex problem the grid point with the lowest mean gap, with its own ratios.
        assert best["convex_gap"] == pytest.approx([-3.0, -2.9, -2.8])
        assert best["d_ratio"] == pytest.approx([0.3] * 3) and best["d_ratio_max"] == pytest.approx([0.6] * 3)


def test_pick_best_uses_the_mean_over_seeds() -> None:
    t = Table([0, 1], [JobRecord("a", 0, {"v": 100.0}), JobRecord("a", 1, {"v": 0.0}),
                       JobRecord("b", 0, {"v": 60.0}), JobRecord("b", 1, {"v": 60.0})])
    assert exp.pick_best(t, ["a", "b"], "v", higher=True) == "b"  # seed 0 alone would pick "a"
    assert exp.pick_best(t, ["a", "b"], "v", higher=False) == "a"


# ----------------------------------------------------------------------------- wiring
def test_every_arm_builds_its_own_optimizer() -> None:
    cfg, _ = _quick()
    arms = exp.arm_table(cfg)
    grid = {f"adam_lr{exp._slug(lr)}": lr for lr in cfg["adam_lrs"]}
    grid |= {f"sgd_lr{exp._slug(lr)}": lr for lr in cfg["sgd_lrs"]}
    grid |= {f"lad_adam_lr{exp._slug(lr)}": lr for lr in cfg["convex_adam_lrs"]}
    grid |= {f"lad_sgd_lr{exp._slug(lr)}": lr for lr in cfg["convex_sgd_lrs"]}
    declared = set(get("d_adaptation").spec.reproduction.arms) - {"adam_best", "sgd_best"}
    assert set(arms) == declared | set(grid), "job arms = the spec's non-derived arms + every grid point"
    expected = {
        "dadapt_adam": (DAdaptAdam, {"lr": 1.0, "use_bias_correction": False, "weight_decay": 0.0}),
        "dadapt_adam_bc": (DAdaptAdam, {"lr": 1.0, "use_bias_correction": True, "weight_decay": 0.0}),
        "dadapt_adam_ref": (dadaptation.DAdaptAdam, {"lr": 1.0, "use_bias_correction": False, "weight_decay": 0}),
        "dadapt_sgd": (DAdaptSGD, {"lr": 1.0, "momentum": 0.9, "weight_decay": 0.0}),
        "dadapt_sgd_ref": (dadaptation.DAdaptSGD, {"lr": 1.0, "momentum": 0.9, "weight_decay": 0}),
        "dadapt_da": (DAdaptDualAveraging, {"lr": 1.0}),
    }
    for name, arm in arms.items():
        p = torch.nn.Parameter(torch.zeros(3))
        opt = exp._optimizer(arm, [p], momentum=0.9)
        group = opt.param_groups[0]
        if name in grid:
            cls = torch.optim.Adam if "adam" in name else torch.optim.SGD
            assert type(opt) is cls and group["lr"] == grid[name], name
            if cls is torch.optim.SGD:
                assert group["momentum"] == 0.9, name
            continue
        cls, hyper = expected[name]
        assert type(opt) is cls, f"{name} builds {type(opt).__name__}, not {cls.__name__}"
        for k, v in hyper.items():
            assert group[k] == v, f"{name}: {k} = {group[k]!r}, expected {v!r}"
        for k in ("growth_rate", "d"):
            if k in group:
                assert group[k] == (math.inf if k == "growth_rate" else 1e-6), f"{name}: {k} is not the default"


class _Recording:
    """Wraps an optimizer class: records constructions and counts steps."""

    def __init__(self, cls: type) -> None:
        self.cls, self.made, self.steps = cls, [], 0
        rec = self

        class Wrapped(cls):  # type: ignore[misc, valid-type]
            def __init__(self, params: Any, **kw: Any) -> None:
                rec.made.append(kw)
                super().__init__(params, **kw)

            def step(self, closure: Any = None) -> Any:
                rec.steps += 1
                return super().step(closure)

        self.wrapped = Wrapped


def _job(cfg: dict[str, Any], arm: str, seed: int = 0) -> Any:
    from zoo.harness import _seeded

    _seeded(seed)
    return exp._job(cfg, arm, seed, JobContext(_env(), exp._setup(cfg, _env()), None, None))


@pytest.mark.parametrize("arm,name", [("dadapt_adam_ref", "DAdaptAdam"), ("dadapt_sgd_ref", "DAdaptSGD")])
def test_reference_arms_step_the_authors_optimizer(monkeypatch: pytest.MonkeyPatch, arm: str, name: str) -> None:
    cfg = _tiny()
    rec = _Recording(getattr(dadaptation, name))
    monkeypatch.setattr(dadaptation, name, rec.wrapped)
    mine = _Recording(getattr(exp, name))  # our class of the same name
    monkeypatch.setattr(exp, name, mine.wrapped)
    _job(cfg, arm)
    data = exp._setup(cfg, _env())
    mlp_steps = int(cfg["epochs"]) * math.ceil(data.n_train / int(cfg["batch_size"]))
    assert len(rec.made) == 2, "one optimizer for the MLP, one for the convex problem"
    assert rec.steps == mlp_steps + int(cfg["convex_steps"])
    assert mine.steps == 0, "a reference arm must not run our implementation"
    if name == "DAdaptSGD":
        momenta = [kw.get("momentum") for kw in rec.made]
        assert momenta == [0.9, 0.0], "momentum 0.9 on the MLP, none on the convex problem"


def test_our_arms_do_not_touch_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: Any, **k: Any) -> None:
        raise AssertionError("the reference package was used by one of our arms")

    monkeypatch.setattr(dadaptation, "DAdaptAdam", boom)
    monkeypatch.setattr(dadaptation, "DAdaptSGD", boom)
    for arm in ("dadapt_adam", "dadapt_adam_bc", "dadapt_sgd", "dadapt_da"):
        _job(_tiny(), arm)


def test_missing_reference_package_fails_in_one_line_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dadaptation", None)  # `import dadaptation` now raises ImportError
    with pytest.raises(ModuleNotFoundError) as err:
        _job(_tiny(), "dadapt_adam_ref")
    msg = str(err.value)
    assert "\n" not in msg and 'pip install -e ".[test]"' in msg and "dadaptation==3.2" in msg


def test_schedule_is_shared_by_every_arm_but_algorithm_1(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _tiny()
    seen: list[tuple[str, int]] = []
    real = torch.optim.lr_scheduler.CosineAnnealingLR

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, opt: Any, T_max: int, **kw: Any) -> None:
            seen.append((type(opt).__name__, T_max))
            super().__init__(opt, T_max=T_max, **kw)

    monkeypatch.setattr(torch.optim.lr_scheduler, "CosineAnnealingLR", Spy)
    data = exp._setup(cfg, _env())
    total = int(cfg["epochs"]) * math.ceil(data.n_train / int(cfg["batch_size"]))
    for arm in ("adam_lr0_001", "sgd_lr0_1", "dadapt_adam", "dadapt_adam_ref", "dadapt_adam_bc",
                "dadapt_sgd", "dadapt_sgd_ref", "dadapt_da"):
        before = len(seen)
        _job(cfg, arm)
        assert len(seen) - before == (0 if arm == "dadapt_da" else 1), arm
        if arm != "dadapt_da":
            assert seen[-1][1] == total, f"{arm}: the cosine schedule spans the whole run"


def test_val_acc_is_measured_on_the_validation_split(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _tiny()
    data = exp._setup(cfg, _env())
    seen: list[torch.Tensor] = []
    real = exp.evaluate

    def spy(model: Any, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> dict[str, float]:
        seen.append(x)
        return real(model, x, y, **kw)

    monkeypatch.setattr(exp, "evaluate", spy)
    out = _job(cfg, "adam_lr0_001")
    assert len(seen) == 1 and torch.equal(seen[0], data.x_val), "val_acc must come from the validation split"
    assert out.metrics["test_acc"] == out.series["test_acc"][-1]


def test_validation_split_is_carved_from_train_and_shared() -> None:
    cfg = _tiny()
    full = exp._setup({**cfg, "val_fraction": 0.5}, _env())
    data = exp._setup(cfg, _env())
    assert data.x_val is not None and data.y_val is not None
    assert data.n_train + data.x_val.shape[0] == cfg["n_train"]
    assert data.x_val.shape[0] == round(cfg["val_fraction"] * cfg["n_train"])
    assert torch.equal(data.x_val, exp._setup(cfg, _env()).x_val), "the same split for every job"
    rows = {tuple(r) for r in data.x_train.tolist()}
    assert not any(tuple(r) in rows for r in data.x_val.tolist()), "validation rows are not trained on"
    assert full.x_val.shape[0] != data.x_val.shape[0]


# ----------------------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def quick_runs() -> tuple[Any, Any]:
    cfg, seeds = _quick()
    return run(exp.EXPERIMENT, cfg, seeds, _env(), workers=1), run(exp.EXPERIMENT, cfg, seeds, _env(), workers=2)


def test_quick_run_is_identical_for_one_and_two_workers(quick_runs: tuple[Any, Any]) -> None:
    one, two = quick_runs
    assert [dataclasses.asdict(j) for j in one.jobs] == [dataclasses.asdict(j) for j in two.jobs]
    assert one.metrics == two.metrics


def test_quick_run_produces_every_claimed_metric(quick_runs: tuple[Any, Any]) -> None:
    res, _ = quick_runs
    spec = get("d_adaptation").spec
    for c in spec.active_claims():
        for ref in c.refs():
            arm, metric = ref.split(".")
            vals = res.metrics[arm][metric]
            assert len(vals) == 1 and all(math.isfinite(v) for v in vals), f"{ref} = {vals}"
    for arm in spec.reproduction.arms:
        assert {"test_acc", "val_acc"} <= set(res.metrics[arm]), arm
    assert len(res.curves) == 5
    for c in res.curves:
        assert c.series and all(len(ys) == len(c.x) for ys in c.series.values()), c.title


def test_arms_differ_where_they_should(quick_runs: tuple[Any, Any]) -> None:
    res, _ = quick_runs
    jobs = {j.arm: j for j in res.jobs}
    cfg, _ = _quick()
    # Bias correction changes the run; so does the grid's learning rate.
    assert jobs["dadapt_adam_bc"].metrics["base_lr"] != jobs["dadapt_adam"].metrics["base_lr"]
    assert jobs["dadapt_adam_bc"].series["convex_d_ratio"] != jobs["dadapt_adam"].series["convex_d_ratio"]
    for fam in ("adam", "sgd"):
        a, b = exp._grid(cfg, fam, "mlp")[:2]
        assert (jobs[a].series["test_acc"], jobs[a].metrics["val_acc"]) != (jobs[b].series["test_acc"], jobs[b].metrics["val_acc"])
        la, lb = exp._grid(cfg, fam, "convex")[:2]
        assert jobs[la].metrics["convex_gap"] != jobs[lb].metrics["convex_gap"], fam
    # Ours and the authors' are the same algorithm: the same adapted step on the same data.
    for ours, ref in (("dadapt_adam", "dadapt_adam_ref"), ("dadapt_sgd", "dadapt_sgd_ref")):
        assert jobs[ours].metrics["base_lr"] == pytest.approx(jobs[ref].metrics["base_lr"], rel=1e-4)
        assert jobs[ours].metrics["d_ratio"] == pytest.approx(jobs[ref].metrics["d_ratio"], rel=1e-9)
    # SGD-type and Adam-type estimates are measured against different norms of D*.
    assert jobs["dadapt_sgd"].metrics["d_ratio"] != jobs["dadapt_adam"].metrics["d_ratio"]
    # The reported baseline is one of its grid points, chosen by validation.
    for fam in ("adam", "sgd"):
        grid = exp._grid(cfg, fam, "mlp")
        best = max(grid, key=lambda a: jobs[a].metrics["val_acc"])
        assert res.metrics[f"{fam}_best"]["test_acc"] == [jobs[best].metrics["test_acc"]]


# ----------------------------------------------------------------------------- convex problem
def test_lad_problem_has_known_minimiser() -> None:
    a, b, x_star = exp.lad_problem(0, n=50, dim=5)
    assert a.dtype == torch.float64 and torch.linalg.matrix_rank(a) == 5
    assert (a @ x_star - b).abs().max() < 1e-12  # f(x*) = 0 = f*


def test_bound_tracker_lower_bounds_distance_for_fixed_step_sgd() -> None:
    a, b, x_star = exp.lad_problem(1, n=100, dim=8)
    w = torch.nn.Parameter(torch.zeros(8, dtype=torch.float64))
    opt = torch.optim.SGD([w], lr=0.05)
    tracker = exp._BoundTracker(w, 0.05, 2.0)
    bounds = []
    for _ in range(300):
        opt.zero_grad()
        (a @ w - b).abs().mean().backward()
        bounds.append(tracker.update(w, w.grad))
        opt.step()
    dist = float(x_star.norm())
    assert max(bounds) <= dist and bounds[-1] > 0.1 * dist
    assert all(y >= x for x, y in zip(bounds, bounds[1:])), "the running maximum must be monotone"


def test_convex_subgradient_matches_autograd() -> None:
    a, b, _ = exp.lad_problem(2, n=60, dim=6)
    x = torch.randn(6, dtype=torch.float64, requires_grad=True)
    (a @ x - b).abs().mean().backward()
    with torch.no_grad():
        f, g = exp.lad_subgradient(a, b, x)
    torch.testing.assert_close(g, x.grad)
    assert f == pytest.approx(float((a @ x - b).abs().mean().detach()))
    # At a kink (a residual exactly 0) the subgradient is autograd's choice, sign(0) = 0.
    a0, b0 = torch.eye(2, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    x0 = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    (a0 @ x0 - b0).abs().mean().backward()
    torch.testing.assert_close(exp.lad_subgradient(a0, b0, x0.detach())[1], x0.grad)
