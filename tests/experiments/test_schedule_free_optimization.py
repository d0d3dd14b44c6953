"""Wiring tests for zoo.experiments.schedule_free_optimization: they fail when the experiment is mis-wired.

* the Schedule-Free arms build the paper's optimizers with the stated warmup, momentum and
  weight decay and no scheduler; the cosine baselines read their learning rate from the family's
  tuning record; the half-horizon baselines anneal to 0 over half the run and stop there;
* Schedule-Free arms are evaluated at their averaged point (eval mode) and train at ``y``;
* the anytime metrics are read at the stated epochs of the validation-selected grid point's
  (not the test-best point's) per-epoch series;
* a quick run produces every metric the claims need.
"""

from __future__ import annotations

import functools

import math
from typing import Any

import pytest
import torch

from zoo.catalogue import get
from zoo.experiments import schedule_free_optimization as exp
from zoo.experiments._optbench import job_arms, slug, tuned_record
from zoo.experiments._optim_tuning import ADAM_GRID, SGD_GRID
from tests.experiments.budgets import quick_env, setup_context, spec_budget
from zoo.harness import JobContext, JobRecord, Table, _seeded, run
from zoo.optim.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD

ID = "schedule_free_optimization"


_cfg = functools.partial(spec_budget, ID)
_env = quick_env


def _ctx(cfg: dict[str, Any]) -> JobContext:
    return setup_context(exp.EXPERIMENT, cfg)


def test_schedule_free_arms_build_the_papers_optimizers() -> None:
    cfg, _ = _cfg(quick=False)
    ms = exp._methods(cfg)
    for m, cls in (("sf_adamw", ScheduleFreeAdamW), ("sf_sgd", ScheduleFreeSGD)):
        grid = ADAM_GRID if m == "sf_adamw" else SGD_GRID
        assert ms[m].lrs == tuple(cfg[f"{m}_lrs"]) == grid, "the baseline's own tuning grid: the same tuning effort"
        for lr in ms[m].lrs or ():
            opt, sched = ms[m].build([torch.nn.Parameter(torch.zeros(2))], 1000, lr, cfg, None)  # type: ignore[misc]
            g = opt.param_groups[0]
            assert type(opt) is cls and sched is None, "no schedule after the warmup"
            assert g["lr"] == lr and g["warmup_steps"] == 50, "warmup over 5% of the steps"
            assert g["r"] == 0.0 and g["weight_lr_power"] == 2.0
            if cls is ScheduleFreeAdamW:
                assert g["betas"] == (0.9, 0.999) and g["weight_decay"] == 0.01, "decay as the AdamW baseline's"
            else:
                assert g["momentum"] == 0.9 and g["weight_decay"] == 0.0


@pytest.mark.parametrize("m,cls", [("adamw_cosine", torch.optim.AdamW), ("sgdm_cosine", torch.optim.SGD)])
def test_cosine_baselines_run_at_the_recorded_lr(monkeypatch: pytest.MonkeyPatch, m: str, cls: type) -> None:
    cfg, _ = _cfg()
    made: list[tuple[type, float, int]] = []
    real = torch.optim.lr_scheduler.CosineAnnealingLR

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, opt: Any, T_max: int, **kw: Any) -> None:
            made.append((type(opt), opt.param_groups[0]["lr"], T_max))
            super().__init__(opt, T_max=T_max, **kw)

    monkeypatch.setattr(torch.optim.lr_scheduler, "CosineAnnealingLR", Spy)
    ctx = _ctx(cfg)
    w = "digits_logreg"
    rec = float(tuned_record()["baselines"][w][m]["lr"])
    data = ctx.setup[w]
    steps = 2 * math.ceil(data.n_train / 64)
    for arm, epochs in ((f"{m}__{w}", 2), (f"{m}_half__{w}", 1)):
        made.clear()
        _seeded(0)
        out = exp.EXPERIMENT.job(cfg, arm, 0, ctx)
        assert made == [(cls, rec, steps * epochs // 2)], f"{arm}: cosine to 0 over its own horizon at the tuned lr"
        assert out.metrics["lr"] == rec and len(out.series["test_acc"]) == epochs, arm


def test_schedule_free_is_evaluated_at_x_and_trained_at_y(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = _cfg()
    opts: list[Any] = []
    modes: list[bool] = []
    for name, cls in (("ScheduleFreeAdamW", ScheduleFreeAdamW), ("ScheduleFreeSGD", ScheduleFreeSGD)):
        class Spy(cls):  # type: ignore[misc, valid-type]
            def __init__(self, *a: Any, **k: Any) -> None:
                super().__init__(*a, **k)
                opts.append(self)

            def step(self, closure: Any = None) -> Any:
                assert self.train_mode, "a step at x"
                return super().step(closure)
        monkeypatch.setattr(exp, name, Spy)
    import zoo.workloads.optim as wo

    real = wo.evaluate

    def spy(model: Any, x: Any, y: Any, **kw: Any) -> Any:
        modes.append(opts[-1].train_mode)
        return real(model, x, y, **kw)

    monkeypatch.setattr(wo, "evaluate", spy)
    ctx = _ctx(cfg)
    for m in ("sf_adamw", "sf_sgd"):
        modes.clear()
        _seeded(0)
        exp.EXPERIMENT.job(cfg, f"{m}__digits_logreg__lr{slug(float(cfg[f'{m}_lrs'][0]))}", 0, ctx)
        assert modes and not any(modes), f"{m}: every evaluation at the averaged point x"


def _hand_table(cfg: dict[str, Any]) -> Table:
    """Full-length series where the validation-best grid point is not the test-best one."""
    seeds, recs = [0, 1], []
    epochs = exp._epochs(cfg, "mnist1d_mlp")
    for arm, (m, w, lr) in job_arms(exp._methods(cfg), cfg).items():
        n = epochs // 2 if m.endswith("_half") else epochs
        for s in seeds:
            if lr is None:
                series = [float(e + s) for e in range(1, n + 1)]
                val = 50.0
            else:
                i = sorted(exp._methods(cfg)[m].lrs or ()).index(lr)
                series = [100.0 * i + e + s for e in range(1, n + 1)]
                val = 80.0 if i == 1 else 60.0  # validation prefers grid point 1; test the last one
            recs.append(JobRecord(arm, s, {"test_acc": series[-1], "val_acc": val, "train_loss": 0.1,
                                           "grad_evals": 1.0, "diverged": 0.0, **({"lr": lr} if lr else {})},
                                  {"test_acc": series, "val_acc": series, "train_loss": series}))
    return Table(seeds, recs)


def test_anytime_metrics_read_the_selected_run_at_the_stated_epochs() -> None:
    cfg = {**_cfg(quick=False)[0], "workloads": ["mnist1d_mlp"]}
    assert exp.checkpoints(30) == {"quarter": 8, "half": 15}
    derived = exp.EXPERIMENT.derive(cfg, _hand_table(cfg))  # type: ignore[misc]
    for m in ("sf_adamw", "sf_sgd"):
        assert derived[m]["mnist1d_mlp_lr"] == [sorted(cfg[f"{m}_lrs"])[1]] * 2
        assert derived[m]["mnist1d_mlp_test_acc_quarter"] == [108.0, 109.0], m
        assert derived[m]["mnist1d_mlp_test_acc_half"] == [115.0, 116.0], m
    for m in ("adamw_cosine", "sgdm_cosine"):
        assert derived[m]["mnist1d_mlp_test_acc_quarter"] == [8.0, 9.0]
        assert derived[m]["mnist1d_mlp_test_acc_half"] == [15.0, 16.0]
    for m in ("adamw_cosine_half", "sgdm_cosine_half"):
        assert derived[m]["mnist1d_mlp_test_acc"] == [15.0, 16.0], "the half run's own end"


@pytest.fixture(scope="module")
def quick_run() -> Any:
    cfg, seeds = _cfg()
    return run(exp.EXPERIMENT, cfg, seeds, _env(), workers=1)


def test_the_wide_arm_picks_over_both_grids_by_validation() -> None:
    cfg = {**_cfg(quick=False)[0], "workloads": ["mnist1d_mlp"]}
    ms = exp._methods(cfg)
    assert ms["sf_sgd_hi"].build is ms["sf_sgd"].build and ms["sf_sgd_hi"].lrs == (30.0, 100.0)
    seeds, recs = [0, 1], []
    for arm, (m, w, lr) in job_arms(ms, cfg).items():
        n = exp._epochs(cfg, w) // (2 if m.endswith("_half") else 1)
        for s in seeds:
            val = {("sf_sgd_hi", 30.0): 90.0, ("sf_sgd", 10.0): 85.0}.get((m, lr), 50.0)
            test = 40.0 if (m, lr) == ("sf_sgd_hi", 30.0) else 70.0  # the validation pick is not the test-best
            series = [test - 1.0 + e / 100 for e in range(1, n + 1)]
            recs.append(JobRecord(arm, s, {"test_acc": test, "val_acc": val, "train_loss": 0.1, "grad_evals": 1.0,
                                           "diverged": 0.0, **({"lr": lr} if lr else {})},
                                  {"test_acc": series, "val_acc": series, "train_loss": series}))
    derived = exp.EXPERIMENT.derive(cfg, Table(seeds, recs))  # type: ignore[misc]
    assert derived["sf_sgd_wide"]["mnist1d_mlp_lr"] == [30.0, 30.0]
    assert derived["sf_sgd_wide"]["mnist1d_mlp_test_acc"] == [40.0, 40.0]
    assert derived["sf_sgd_wide"]["mnist1d_mlp_test_acc_half"] == pytest.approx([39.15, 39.15])
    assert derived["sf_sgd"]["mnist1d_mlp_lr"] == [10.0, 10.0], "sf_sgd itself stays on its own grid"


def test_quick_run_has_every_metric(quick_run: Any) -> None:
    spec = get(ID).spec
    assert set(spec.reproduction.arms) <= set(quick_run.metrics)
    for c in spec.active_claims():
        for ref in c.refs():
            arm, metric = ref.split(".")
            assert arm in spec.reproduction.arms and metric in spec.reproduction.metrics, ref
            assert len(quick_run.metrics[arm][metric]) == 1, f"the quick run must produce {ref}"
    for m in exp.FULL_LENGTH:
        assert {"digits_logreg_test_acc_quarter", "digits_logreg_test_acc_half"} <= set(quick_run.metrics[m])
    for c in quick_run.curves:
        assert all(len(ys) == len(c.x) for ys in c.series.values()), c.title
