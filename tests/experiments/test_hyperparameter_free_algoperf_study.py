"""Wiring of the mini-AlgoPerf study: the score, times to target, calibration on validation, the arms' optimizers."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.experiments import hyperparameter_free_algoperf_study as ap
from zoo.harness import JobRecord, Table
from zoo.optim.d_adaptation import DAdaptAdam
from zoo.optim.dog import DoG
from zoo.optim.schedule_free import ScheduleFreeAdamW


def test_the_performance_profile_score():
    inf = math.inf
    s = ap.score({"fast": [2.0, 3.0], "half": [4.0, 3.0], "never": [inf, inf], "slow": [8.0, 12.0]})
    assert s["fast"] == 1.0, "fastest on every workload"
    assert s["never"] == 0.0
    assert s["half"] == pytest.approx((2 / 3 + 1) / 2), "ratio 2 on one workload: (4 - 2) / 3 there"
    assert s["slow"] == 0.0, "ratios of 4 and more score nothing"
    assert ap.score({"a": [inf], "b": [inf]}) == {"a": 0.0, "b": 0.0}


def test_time_to_target_is_the_first_epoch_reaching_it():
    assert ap.time_to_target([10, 50, 80, 79], 80, True) == 3.0
    assert ap.time_to_target([1.0, 0.5, -0.2], 0.0, False) == 3.0
    assert math.isinf(ap.time_to_target([10, 20], 30, True))


def _table(val_fast: str, test_fast: str) -> tuple[dict, Table]:
    """Two workloads; every config of every method identical except: one config per method is
    fastest on validation (``val_fast``), another fastest on test (``test_fast``)."""
    cfg = {"workloads": ["digits_logreg", "lstsq"]}
    recs = []
    for seed in (0, 1):
        for m, configs in ap.CONFIGS.items():
            for c in configs:
                arm = f"{m}__{c}"
                v = [50, 95, 95] if c == val_fast else [50, 60, 95]
                t = [50, 95, 95] if c == test_fast else [50, 60, 95]
                recs.append(JobRecord(f"{arm}__digits_logreg", seed, {}, {"val_acc": v, "test_acc": t}))
                recs.append(JobRecord(f"{arm}__lstsq", seed, {}, {"subopt": [1.0, 0.0, -1.0]}))
    return cfg, Table([0, 1], recs)


def test_calibration_picks_on_validation_never_on_test():
    cfg, table = _table(val_fast="cos", test_fast="const_warm")
    derived: dict = {}
    ap._derive(cfg, table, derived)
    cos = list(ap.CONFIGS["dog"]).index("cos")
    assert derived["dog_calibrated"]["config"] == [float(cos)] * 2, "the validation-fastest config"
    assert derived["dog_default"]["config"] == [0.0, 0.0], "the default is the first config"
    assert set(derived) >= {*(f"{m}_default" for m in ap.LRF), *(f"{m}_calibrated" for m in ap.METHODS), "summary"}
    s = derived["summary"]
    gain = [sum(derived[f"{m}_calibrated"]["score"][i] - derived[f"{m}_default"]["score"][i] for m in ap.LRF) / 4
            for i in range(2)]
    assert s["calibration_gain"] == pytest.approx(gain)


def test_every_arm_builds_the_optimizer_it_names():
    prodigyopt = pytest.importorskip("prodigyopt")
    p = [torch.nn.Parameter(torch.zeros(3))]
    built = {name: m.build(p, 100, None, {}, None) for name, m in ap._methods({}).items()}
    assert type(built["dog__const"][0]) is DoG and built["dog__const"][1] is None
    assert type(built["dadapt_adam__cos"][0]) is DAdaptAdam and built["dadapt_adam__cos"][1] is not None
    sf, sched = built["sf_adamw__lr03"]
    assert type(sf) is ScheduleFreeAdamW and sched is None and sf.defaults["warmup_steps"] == 0
    assert sf.defaults["lr"] == 0.03 and built["sf_adamw__lr0025"][0].defaults["lr"] == 0.0025
    nad, nsched = built["nadamw__lr03_cos_warm"]
    assert type(nad) is torch.optim.NAdam and nad.defaults["lr"] == 3e-2 and nad.defaults["decoupled_weight_decay"]
    assert nsched.lr_lambdas[0](0) == pytest.approx(0.2), "a 5% warmup: step 1 of 5 at a fifth of the rate"
    assert list(ap.CONFIGS["sf_adamw"])[0] == "lr0025", "Schedule-Free's default is its package's lr"
    # a warmup + cosine schedule: 5 warmup steps to the peak, then down to 0 at the end
    opt, sched = built["dadapt_adam__cos_warm"]
    f = sched.lr_lambdas[0]
    assert f(0) == pytest.approx(0.2 * 0.5 * (1 + math.cos(0))) and f(4) == pytest.approx(1.0, abs=0.01)
    assert f(100) == pytest.approx(0.0, abs=1e-12)
    assert type(built["prodigy__const"][0]) is prodigyopt.Prodigy
