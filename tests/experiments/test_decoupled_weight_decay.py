"""Wiring tests for zoo.experiments.decoupled_weight_decay.

* each family builds the optimizer it names: the decoupled ones decay by eta_t lambda per step
  (torch AdamW / zoo SGDW with weight_decay = lambda / lr), the L2 ones add lambda theta to the
  gradient; every run is cosine-annealed;
* the family arm is the (lr, lambda) cell with the best VALIDATION mean, not the test mean; the
  drifts are computed as the spec says; a quick run produces every metric the claims read.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from zoo.catalogue import get, repo_root
from zoo.experiments import decoupled_weight_decay as exp
from zoo.experiments._optbench import job_arms
from zoo.harness import Env, JobRecord, Table, run
from zoo.optim.sgdw import SGDW

ID = "decoupled_weight_decay"


def _cfg(quick: bool = True) -> dict[str, Any]:
    r = get(ID).spec.reproduction
    assert r is not None
    return {**r.config, **(r.quick.config if quick else {})}


@pytest.mark.parametrize("family,cls", [("adamw", torch.optim.AdamW), ("sgdw", SGDW)])
def test_decoupled_families_decay_by_eta_lambda_independent_of_lr(family: str, cls: type) -> None:
    lam, steps = 0.01, 8
    for lr in (0.001, 0.1):
        p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
        opt, sched = exp.build(family, [p], steps, lr, lam)
        assert type(opt) is cls and type(sched) is torch.optim.lr_scheduler.CosineAnnealingLR
        want = 1.0
        for t in range(steps):
            eta = 0.5 * (1 + math.cos(math.pi * t / steps))
            want *= 1 - eta * lam  # zero gradient: only the decay moves theta
            p.grad = torch.zeros_like(p)
            opt.step()
            sched.step()
        assert p.detach().tolist() == pytest.approx([want] * 3, rel=1e-12), f"{family} at lr {lr}"


@pytest.mark.parametrize("family,cls", [("adam_l2", torch.optim.Adam), ("sgd_l2", torch.optim.SGD)])
def test_l2_families_put_lambda_theta_in_the_gradient(family: str, cls: type) -> None:
    p = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt, sched = exp.build(family, [p], 10, 0.01, 0.3)
    assert type(opt) is cls and opt.param_groups[0]["weight_decay"] == 0.3
    assert type(sched) is torch.optim.lr_scheduler.CosineAnnealingLR
    if cls is torch.optim.SGD:
        assert opt.param_groups[0]["momentum"] == 0.9
    else:
        assert not opt.param_groups[0].get("decoupled_weight_decay", False)
    p.grad = torch.zeros_like(p)
    opt.step()
    # zero loss gradient: the step is driven by lambda theta alone (Adam: its sign, lr-sized)
    moved = 1.0 - p.detach()[0].item()
    assert moved == pytest.approx(0.01 * 0.3 if cls is torch.optim.SGD else 0.01, rel=1e-6)


def test_every_cell_is_a_job_and_the_spec_arms_are_the_families() -> None:
    cfg = _cfg(quick=False)
    jobs = job_arms(exp._methods(cfg), cfg)
    assert len(jobs) == 4 * 4 * 6
    for fam in exp.FAMILIES:
        cells = {(lr, m) for m, w, lr in jobs.values() if m.startswith(f"{fam}_wd")}
        assert len(cells) == 24
    assert set(get(ID).spec.reproduction.arms) == set(exp.FAMILIES)


def test_drifts_by_hand() -> None:
    rows = [[90.0, 91.0, 90.5, 80.0],   # best idx 1, edge (>= 90) idx 2
            [91.0, 90.0, 89.0, 85.0],   # best 0, edge (>= 90) 1
            [70.0, 75.0, 80.0, 80.0]]   # best 2 (tie -> smaller), edge 3
    assert exp.drifts(rows, tol=1.0) == (2, 2)
    assert exp.drifts([[1.0, 1.0]], tol=0.0) == (0, 0)


def test_family_arm_is_the_validation_best_cell() -> None:
    cfg = {**_cfg(), "adam_lrs": [0.001, 0.01], "sgd_lrs": [0.01, 0.1], "wds": [0.0001, 0.01]}
    jobs = job_arms(exp._methods(cfg), cfg)
    recs = []
    for arm, (m, w, lr) in jobs.items():
        lam = float(m.rsplit("_wd", 1)[1].replace("_", "."))
        big = lr == max(cfg["adam_lrs"] if m.startswith("adam") else cfg["sgd_lrs"])
        for s in (0, 1, 2):
            val = 60.0 + 10 * (big and lam == 0.01) + s      # validation: the big lr with the big lambda
            test = 60.0 + 20 * ((not big) and lam == 0.0001)  # test: the other corner
            recs.append(JobRecord(arm, s, {"val_acc": val, "test_acc": test, "train_loss": 1.0, "lr": lr}))
    d = exp.EXPERIMENT.derive(cfg, Table([0, 1, 2], recs))
    assert set(d) == set(exp.FAMILIES), "the per-lambda rows are replaced by the family arms"
    for fam in exp.FAMILIES:
        big = max(cfg["adam_lrs"] if fam.startswith("adam") else cfg["sgd_lrs"])
        assert d[fam]["digits_mlp_lr"] == [big] * 3 and d[fam]["digits_mlp_wd"] == [0.01] * 3
        assert d[fam]["digits_mlp_test_acc"] == [60.0] * 3
        # small lr: flat in lambda (best idx 0, edge idx 1); big lr: best idx 1, edge idx 1
        assert d[fam]["digits_mlp_wd_best_drift"] == [1.0] * 3
        assert d[fam]["digits_mlp_wd_edge_drift"] == [0.0] * 3


def test_quick_run_produces_every_metric_the_claims_read() -> None:
    cfg = _cfg()
    res = run(exp.EXPERIMENT, cfg, [0], Env("cpu", repo_root() / "data", quick=True), workers=1)
    for claim in get(ID).spec.active_claims():
        for ref in claim.refs():
            arm, metric = ref.split(".")
            assert metric in res.metrics[arm], ref
    assert len(res.curves) == 1 + len(exp.FAMILIES)
