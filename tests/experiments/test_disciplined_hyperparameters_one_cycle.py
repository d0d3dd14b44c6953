"""Wiring tests for zoo.experiments.disciplined_hyperparameters_one_cycle.

* 1cycle is torch's OneCycleLR in Smith's form (three phases, linear, lr max/10 -> max -> max/10
  -> max/1000, momentum 0.95 -> 0.85 -> 0.95); the step schedule divides by 10 at 50% and 75%;
* the range-test arms train 1cycle at the range test's min-loss lr, from the same initialisation
  as every other arm, count the range test's gradient evaluations, and the half arm trains half
  the epochs;
* grid arms are picked by validation, not test; a quick run produces every claimed metric.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from zoo.catalogue import get, repo_root
from zoo.experiments import disciplined_hyperparameters_one_cycle as exp
from zoo.experiments._optbench import job_arms
from zoo.harness import Env, JobRecord, Table, run
from zoo.workloads.optim import get_workload, load

ID = "disciplined_hyperparameters_one_cycle"


def _cfg(quick: bool = True) -> dict[str, Any]:
    r = get(ID).spec.reproduction
    assert r is not None
    return {**r.config, **(r.quick.config if quick else {})}


def _trace(opt: torch.optim.Optimizer, sched: Any, steps: int) -> tuple[list[float], list[float]]:
    lrs, moms = [], []
    p = opt.param_groups[0]["params"][0]
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        p.grad = torch.zeros_like(p)
        opt.step()
        sched.step()
    return lrs, moms


def test_onecycle_is_smiths_three_phase_linear_cycle() -> None:
    cfg = _cfg(quick=False)
    opt, sched = exp.onecycle([torch.nn.Parameter(torch.zeros(2))], 1001, 0.5, cfg)
    assert type(opt) is torch.optim.SGD and type(sched) is torch.optim.lr_scheduler.OneCycleLR
    lrs, moms = _trace(opt, sched, 1001)
    peak = max(range(1001), key=lambda i: lrs[i])
    assert lrs[0] == pytest.approx(0.05) and lrs[peak] == pytest.approx(0.5, rel=2e-3)
    assert 0.44 * 1000 <= peak <= 0.46 * 1000, "rises over 45% of the steps"
    assert lrs[900] == pytest.approx(0.05, rel=0.02), "back to max/10 at 90%"
    assert lrs[-1] == pytest.approx(0.5 / 10 / 100, rel=0.02), "then annealed to max/1000"
    assert lrs[200] == pytest.approx(0.05 + (0.5 - 0.05) * 200 / 450, rel=0.01), "linear, not cosine"
    assert moms[0] == pytest.approx(0.95) and moms[peak] == pytest.approx(0.85, rel=2e-3) and moms[-1] == pytest.approx(0.95)


def test_step_schedule_divides_by_ten_at_half_and_three_quarters() -> None:
    cfg = _cfg(quick=False)
    opt, sched = exp.step_schedule([torch.nn.Parameter(torch.zeros(2))], 100, 0.2, cfg)
    lrs, moms = _trace(opt, sched, 100)
    assert lrs[49] == pytest.approx(0.2) and lrs[50] == pytest.approx(0.02)
    assert lrs[74] == pytest.approx(0.02) and lrs[75] == pytest.approx(0.002)
    assert set(moms) == {0.9}
    c, _ = exp._methods(cfg)["constant"].build([torch.nn.Parameter(torch.zeros(2))], 100, 0.3, cfg, None)  # type: ignore[misc]
    assert type(c) is torch.optim.SGD and c.param_groups[0]["lr"] == 0.3 and c.param_groups[0]["momentum"] == 0.9


def _data(cfg):
    w = get_workload("mnist1d_mlp")
    return w, load(w, repo_root() / "data", "cpu", cfg["n_train"], cfg["n_test"])


def test_range_test_leaves_the_initialisation_to_the_training_run() -> None:
    cfg = _cfg()
    w, data = _data(cfg)
    torch.manual_seed(0)
    plain = w.model(data)
    torch.manual_seed(0)
    res = exp.range_test(cfg, w, data, 0, "cpu")
    after = w.model(data)
    for a, b in zip(plain.parameters(), after.parameters()):
        assert torch.equal(a, b)
    assert len(res.lrs) <= cfg["rt_iters"] and res.lrs[0] == pytest.approx(cfg["rt_start_lr"])


@pytest.mark.parametrize("arm,half", [("onecycle_rt", False), ("onecycle_rt_half", True)])
def test_range_test_arms_train_onecycle_at_the_tests_lr(monkeypatch: pytest.MonkeyPatch, arm: str, half: bool) -> None:
    cfg = {**_cfg(), "epochs": {"mnist1d_mlp": 4}}
    w, data = _data(cfg)
    made: list[float] = []
    real = exp.onecycle

    def spy(params, steps, max_lr, c):
        made.append((max_lr, steps))
        return real(params, steps, max_lr, c)

    monkeypatch.setattr(exp, "onecycle", spy)
    torch.manual_seed(0)
    rt = exp.range_test(cfg, w, data, 0, "cpu")
    torch.manual_seed(0)
    metrics, series = exp._methods(cfg)[arm].run(cfg, w, data, 0, 4, "cpu")  # type: ignore[misc]
    epochs = 2 if half else 4
    steps = epochs * math.ceil(data.n_train / w.batch_size)
    assert made == [(rt.min_loss_lr(), steps)]
    assert metrics["lr"] == rt.min_loss_lr()
    assert metrics["grad_evals"] == steps + len(rt.lrs)
    assert len(series["test_acc"]) == epochs and series["rt_lr"] == rt.lrs


def test_grids_are_picked_by_validation_and_the_lr_ratio_is_against_onecycles_pick() -> None:
    cfg = {**_cfg(), "lrs": [0.01, 0.1, 1.0]}
    jobs = job_arms(exp._methods(cfg), cfg)
    recs = []
    for arm, (m, w, lr) in jobs.items():
        for s in (0, 1, 2):
            if lr is None:
                recs.append(JobRecord(arm, s, {"val_acc": 1.0, "test_acc": 1.0, "lr": 0.3}))
            else:
                i = cfg["lrs"].index(lr)
                recs.append(JobRecord(arm, s, {"val_acc": 50.0 + 10 * (i == 1) + s, "test_acc": 50.0 + 10 * (i == 2),
                                               "lr": lr}))
    d = exp.EXPERIMENT.derive(cfg, Table([0, 1, 2], recs))
    for m in ("constant", "step", "onecycle"):
        assert d[m]["mnist1d_mlp_lr"] == [0.1] * 3 and d[m]["mnist1d_mlp_test_acc"] == [50.0] * 3
    assert d["onecycle_rt"]["mnist1d_mlp_log_lr_ratio"] == pytest.approx([math.log10(3.0)] * 3)


def test_quick_run_produces_every_metric_the_claims_read() -> None:
    cfg = _cfg()
    res = run(exp.EXPERIMENT, cfg, [0], Env("cpu", repo_root() / "data", quick=True), workers=1)
    for claim in get(ID).spec.active_claims():
        for ref in claim.refs():
            arm, metric = ref.split(".")
            assert metric in res.metrics[arm], ref
    assert any("range test" in c.title for c in res.curves)
