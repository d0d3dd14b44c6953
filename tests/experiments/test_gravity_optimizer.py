"""Wiring tests for zoo.experiments.gravity_optimizer: they fail when the experiment is mis-wired.

* every arm builds the optimizer it names: Gravity at the paper's defaults, Adam at the tuned
  learning rate of the family's record, Adam and RMSProp at their stated defaults, no scheduler;
* Gravity's random initial velocity comes from the job's seed (same seed, same run; another
  seed, another velocity);
* the stability metrics are computed as specified (hand-made curves);
* a quick run produces every metric the claims need.
"""

from __future__ import annotations

import functools

import statistics
from typing import Any

import pytest
import torch

from zoo.catalogue import get
from zoo.experiments import gravity_optimizer as exp
from zoo.experiments._optbench import job_arms, tuned_record
from tests.experiments.budgets import quick_env, setup_context, spec_budget
from zoo.harness import JobContext, JobRecord, Table, _seeded, run
from zoo.optim.gravity import Gravity

ID = "gravity_optimizer"


_cfg = functools.partial(spec_budget, ID)
_env = quick_env


def _ctx(cfg: dict[str, Any]) -> JobContext:
    return setup_context(exp.EXPERIMENT, cfg)


def test_every_arm_builds_the_optimizer_it_names() -> None:
    cfg, _ = _cfg(quick=False)
    ms = exp._methods(cfg)
    assert set(job_arms(ms, cfg)) == {f"{m}__{w}" for m in ms for w in cfg["workloads"]}
    expected = {
        "gravity": (Gravity, {"lr": 0.1, "alpha": 0.01, "beta": 0.9}),
        "adam_default": (torch.optim.Adam, {"lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0}),
        "rmsprop_default": (torch.optim.RMSprop, {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7, "momentum": 0}),
        "adam": (torch.optim.Adam, {"lr": 0.0123, "betas": (0.9, 0.999), "weight_decay": 0}),
    }
    for m, (cls, hyper) in expected.items():
        opt, sched = ms[m].build([torch.nn.Parameter(torch.zeros(2))], 100, 0.0123, cfg, None)  # type: ignore[misc]
        assert type(opt) is cls and sched is None, m
        for k, v in hyper.items():
            assert opt.param_groups[0][k] == v, f"{m}: {k}"
    assert ms["adam"].tuned_as == "adam", "the tuned constant-lr Adam baseline"
    assert all(ms[m].tuned_as is None for m in ("gravity", "adam_default", "rmsprop_default"))


def test_tuned_adam_reads_the_recorded_lr(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = _cfg()
    seen: list[float] = []
    real = torch.optim.Adam

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, params: Any, lr: float = 1e-3, **kw: Any) -> None:
            seen.append(lr)
            super().__init__(params, lr=lr, **kw)

    monkeypatch.setattr(torch.optim, "Adam", Spy)
    ctx = _ctx(cfg)
    _seeded(0)
    out = exp.EXPERIMENT.job(cfg, "adam__digits_mlp", 0, ctx)
    rec = float(tuned_record()["baselines"]["digits_mlp"]["adam"]["lr"])
    assert seen == [rec] and out.metrics["lr"] == rec
    seen.clear()
    _seeded(0)
    exp.EXPERIMENT.job(cfg, "adam_default__digits_mlp", 0, ctx)
    assert seen == [1e-3]


def test_gravity_velocity_follows_the_job_seed() -> None:
    cfg, _ = _cfg()
    ctx = _ctx(cfg)
    runs = []
    for seed in (0, 0, 1):
        _seeded(seed)
        runs.append(exp.EXPERIMENT.job(cfg, "gravity__digits_mlp", seed, ctx).series["train_loss"])
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_stability_metrics_by_hand() -> None:
    assert exp.fluctuation([0.0, 1.0, 3.0, 2.0, 2.0, 6.0]) == pytest.approx((1 + 0 + 4) / 3), "last 3 of 5 changes"
    assert exp.fluctuation(list(map(float, range(30)))) == pytest.approx(1.0)
    cfg = {**_cfg()[0], "workloads": ["digits_mlp"]}
    seeds = [0, 1, 2]
    recs = []
    for m in exp._methods(cfg):
        for s in seeds:
            curve = [50.0, 60.0 + s, 70.0, 70.0 + 2 * s * s]
            recs.append(JobRecord(f"{m}__digits_mlp", s, {"test_acc": curve[-1], "val_acc": 1.0, "train_loss": 0.1,
                                                           "grad_evals": 1.0, "diverged": 0.0},
                                  {"test_acc": curve, "val_acc": curve, "train_loss": curve}))
    derived = exp.EXPERIMENT.derive(cfg, Table(seeds, recs))  # type: ignore[misc]
    for m in exp._methods(cfg):
        acc = [70.0, 72.0, 78.0]  # mean 73.33, median 72: the deviation is from the mean
        assert derived[m]["digits_mlp_seed_dev"] == pytest.approx([abs(a - statistics.fmean(acc)) for a in acc])
        assert derived[m]["digits_mlp_fluct"] == pytest.approx([(10 - 0 + 0) / 2, (10 - 1 + 2) / 2, (10 - 2 + 8) / 2])


@pytest.fixture(scope="module")
def quick_run() -> Any:
    cfg, seeds = _cfg()
    return run(exp.EXPERIMENT, cfg, seeds, _env(), workers=1)


def test_quick_run_has_every_metric(quick_run: Any) -> None:
    spec = get(ID).spec
    assert set(spec.reproduction.arms) <= set(quick_run.metrics)
    for arm in spec.reproduction.arms:
        assert {"digits_mlp_seed_dev", "digits_mlp_fluct", "digits_mlp_test_acc"} <= set(quick_run.metrics[arm])
    for c in spec.active_claims():
        for ref in c.refs():
            arm, metric = ref.split(".")
            assert arm in spec.reproduction.arms and metric in spec.reproduction.metrics, ref
            assert len(quick_run.metrics[arm][metric]) == 1, f"the quick run must produce {ref}"
