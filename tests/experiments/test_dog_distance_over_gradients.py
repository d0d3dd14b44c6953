"""Wiring tests for zoo.experiments.dog_distance_over_gradients: they fail when the experiment is mis-wired.

* every arm builds the optimizer it names (DoG / L-DoG, averaged or not, its reps_rel; the tuned
  baselines: SGD momentum 0.9 / Adam with a cosine schedule at the learning rate read from the
  tuning record, for the workload at hand);
* :class:`PolyAveraged` evaluates the polynomial-decay average (the same numbers as the
  authors'-style averager on the same iterates) and gives the trained weights back untouched;
* in a real job, the averaged and last-iterate arms share the trajectory (same training loss)
  but report different evaluation points;
* the spec's claims read arms and metrics the experiment produces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from zoo.catalogue import get, repo_root
from zoo.experiments import _optbench
from zoo.experiments import dog_distance_over_gradients as exp
from zoo.harness import Env, JobContext
from zoo.optim.dog import DoG, LDoG, PolynomialDecayAverager
from zoo.workloads.optim import get_workload


def _cfg() -> dict[str, Any]:
    r = get("dog_distance_over_gradients").spec.reproduction
    assert r is not None
    return {**r.config, **r.quick.config}


@pytest.fixture
def tuned_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tuning record with different learning rates per workload and baseline."""
    rec = {"baselines": {
        "digits_logreg": {"sgdm_cosine": {"lr": 0.3}, "adam_cosine": {"lr": 0.003}},
        "digits_mlp": {"sgdm_cosine": {"lr": 0.03}, "adam_cosine": {"lr": 0.01}},
        "mnist1d_mlp": {"sgdm_cosine": {"lr": 0.1}, "adam_cosine": {"lr": 0.001}},
    }}
    p = tmp_path / "tuned.json"
    p.write_text(json.dumps(rec))
    monkeypatch.setattr(_optbench, "TUNED_FILE", str(p))
    return p


def _build(method: str, workload: str = "digits_logreg") -> Any:
    cfg = _cfg()
    meth = exp._methods(cfg)[method]
    model = nn.Linear(4, 3)
    lr = None
    if meth.tuned_as is not None:
        lr = _optbench.tuned_record()["baselines"][workload][meth.tuned_as]["lr"]
    return meth.build(list(model.parameters()), 100, lr, cfg, get_workload(workload))


def test_every_arm_builds_the_optimizer_it_names(tuned_file: Path) -> None:
    opt, sched = _build("dog")
    assert type(opt) is DoG and sched is None and opt.defaults["reps_rel"] == 1e-6 and opt.defaults["lr"] == 1.0
    opt, _ = _build("ldog")
    assert type(opt) is LDoG
    for name, cls in (("dog_avg", DoG), ("ldog_avg", LDoG)):
        opt, _ = _build(name)
        assert isinstance(opt, exp.PolyAveraged) and type(opt.inner) is cls
        assert opt.averager.gamma == 8.0 and opt.inner.defaults["reps_rel"] == 1e-6
    for reps in (1e-8, 1e-4):
        opt, _ = _build(f"dog_avg_reps{exp.reps_slug(reps)}")
        assert isinstance(opt, exp.PolyAveraged) and type(opt.inner) is DoG and opt.inner.defaults["reps_rel"] == reps


@pytest.mark.parametrize("workload", ["digits_logreg", "mnist1d_mlp"])
def test_tuned_baselines_read_the_record_for_their_workload(tuned_file: Path, workload: str) -> None:
    rec = json.loads(tuned_file.read_text())["baselines"][workload]
    opt, sched = _build("sgdm_tuned", workload)
    assert type(opt) is torch.optim.SGD and opt.defaults["momentum"] == 0.9
    assert opt.param_groups[0]["lr"] == rec["sgdm_cosine"]["lr"]
    assert isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR) and sched.T_max == 100
    opt, sched = _build("adam_tuned", workload)
    assert type(opt) is torch.optim.Adam and opt.param_groups[0]["lr"] == rec["adam_cosine"]["lr"]
    assert isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR)


def test_the_job_runs_the_tuned_lr_of_the_record(tuned_file: Path) -> None:
    cfg = {**_cfg(), "workloads": ["mnist1d_mlp"], "epochs": {"mnist1d_mlp": 1}}
    env = Env("cpu", repo_root() / "data", quick=True)
    ctx = JobContext(env, exp.EXPERIMENT.setup(cfg, env), None, None)
    torch.manual_seed(0)
    out = exp.EXPERIMENT.job(cfg, "sgdm_tuned__mnist1d_mlp", 0, ctx)
    assert out.metrics["lr"] == 0.1


def test_poly_averaged_evaluates_the_average_and_restores_the_weights() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    params = list(model.parameters())
    twin = nn.Linear(3, 2)
    twin.load_state_dict(model.state_dict())
    ref = PolynomialDecayAverager(twin, gamma=8.0)
    opt = exp.PolyAveraged(DoG(params, reps_rel=1e-2), params, gamma=8.0)
    x, y = torch.randn(16, 3), torch.randn(16, 2)
    for _ in range(6):
        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss
        loss = opt.step(closure)
        assert loss is not None
        twin.load_state_dict(model.state_dict())
        ref.step()
    trained = [p.detach().clone() for p in params]
    opt.eval()
    for p, a in zip(params, ref.averaged_model.parameters()):
        torch.testing.assert_close(p.detach(), a.detach(), rtol=0, atol=0)
    assert not all(torch.equal(p.detach(), t) for p, t in zip(params, trained)), "the average differs from the last iterate"
    opt.eval()  # idempotent
    opt.train()
    assert all(torch.equal(p.detach(), t) for p, t in zip(params, trained))
    opt.train()  # idempotent
    assert all(torch.equal(p.detach(), t) for p, t in zip(params, trained))


def test_averaged_arm_shares_the_trajectory_and_reports_the_average(tuned_file: Path) -> None:
    cfg = {**_cfg(), "workloads": ["digits_logreg"], "epochs": {"digits_logreg": 8}, "n_train": None, "n_test": None}
    env = Env("cpu", repo_root() / "data", quick=True)
    ctx = JobContext(env, exp.EXPERIMENT.setup(cfg, env), None, None)
    outs = {}
    for arm in ("dog__digits_logreg", "dog_avg__digits_logreg"):
        torch.manual_seed(0)
        outs[arm] = exp.EXPERIMENT.job(cfg, arm, 0, ctx)
    a, b = outs["dog__digits_logreg"], outs["dog_avg__digits_logreg"]
    assert a.series["train_loss"] == b.series["train_loss"]
    assert a.metrics["val_acc"] != b.metrics["val_acc"] or a.metrics["test_acc"] != b.metrics["test_acc"]


def test_claims_read_produced_arms_and_metrics() -> None:
    spec = get("dog_distance_over_gradients").spec
    cfg = spec.reproduction.config
    methods = exp._methods(cfg)
    for c in spec.claims:
        for ref in (c.condition.metric, c.condition.minus):
            if ref is None:
                continue
            arm, metric = ref.split(".")
            assert arm in methods and arm in spec.reproduction.arms, ref
            assert any(metric == f"{w}_test_acc" for w in cfg["workloads"]), ref
