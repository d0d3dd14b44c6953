"""Wiring tests for zoo.experiments.saddle_free_newton: they fail when the experiment is mis-wired.

* every arm steps the optimizer it names (saddle-free Newton with ``|T|``, damped Newton with
  ``T``, SGD with or without momentum at the grid's learning rate);
* the equal-evaluation baselines really get saddle-free Newton's gradient evaluations;
* the baselines' learning rates follow the VALIDATION mean (a hand-made table where validation
  and training rankings disagree), the toy's the highest depth;
* the synthetic saddle: a critical point at 0 and the minima at the stated ``f*``;
* a quick run produces every metric the spec's claims read.
"""

from __future__ import annotations

import math

import pytest
import torch

from zoo.catalogue import get, repo_root
from zoo.experiments import saddle_free_newton as exp
from zoo.harness import Env, JobContext, JobRecord, Table, run


def _cfgs() -> tuple[dict, dict, list[int]]:
    r = get("saddle_free_newton").spec.reproduction
    assert r is not None
    return dict(r.config), {**r.config, **r.quick.config}, list(r.quick.seeds or r.seeds)


def _ctx(cfg: dict) -> JobContext:
    env = Env("cpu", repo_root() / "data", quick=True)
    return JobContext(env, exp._setup(cfg, env), None, None)


def test_every_arm_steps_the_optimizer_it_names(monkeypatch) -> None:
    _, cfg, _ = _cfgs()
    made: list[tuple[str, dict]] = []
    real_sfn, real_sgd = exp.SaddleFreeNewton, torch.optim.SGD

    class SFN(real_sfn):  # type: ignore[misc, valid-type]
        def __init__(self, params, **kw):
            made.append(("sfn", kw))
            super().__init__(params, **kw)

    class SGD(real_sgd):  # type: ignore[misc, valid-type]
        def __init__(self, params, **kw):
            made.append(("sgd", kw))
            super().__init__(params, **kw)

    monkeypatch.setattr(exp, "SaddleFreeNewton", SFN)
    monkeypatch.setattr(torch.optim, "SGD", SGD)
    ctx = _ctx(cfg)
    for arm, (part, method, lr) in exp.job_arms(cfg).items():
        made.clear()
        torch.manual_seed(0)
        exp._job(cfg, arm, 0, ctx)
        assert len(made) == 1, arm
        kind, kw = made[0]
        if method in ("sfn", "newton"):
            assert kind == "sfn" and kw["absolute"] == (method == "sfn"), arm
            key = "krylov_dim" if part == "ae" else "toy_krylov_dim"
            assert kw["krylov_dim"] == cfg[key] and kw["lr"] == 1.0, arm
        else:
            assert kind == "sgd" and kw["lr"] == lr, arm
            assert kw["momentum"] == (0.9 if method.startswith("gdm") else 0.0), arm


def test_equal_evaluation_baselines_get_saddle_free_newtons_evaluations() -> None:
    _, cfg, _ = _cfgs()
    ctx = _ctx(cfg)
    torch.manual_seed(0)
    sfn = exp._job(cfg, "ae_sfn", 0, ctx).metrics
    per = exp.sfn_evals_per_step(cfg["krylov_dim"], len(cfg["dampings"]), fd=True)
    assert sfn["ae_grad_evals"] == cfg["iterations"] * per
    for b in ("gd_evals", "gdm_evals"):
        arm = next(a for a, (p, m, _) in exp.job_arms(cfg).items() if p == "ae" and m == b)
        torch.manual_seed(0)
        out = exp._job(cfg, arm, 0, ctx)
        assert out.metrics["ae_grad_evals"] == sfn["ae_grad_evals"], b
        assert len(out.series["ae_train_loss"]) == cfg["iterations"], "the curve is on saddle-free Newton's clock"
    arm = next(a for a, (p, m, _) in exp.job_arms(cfg).items() if p == "ae" and m == "gd")
    assert exp._job(cfg, arm, 0, ctx).metrics["ae_grad_evals"] == cfg["iterations"]
    toy_sfn = exp._job(cfg, "toy_sfn", 0, ctx).metrics["toy_grad_evals"]
    toy_gd = exp._job(cfg, next(a for a in exp.job_arms(cfg) if a.startswith("toy_gd__")), 0, ctx).metrics
    nominal = cfg["toy_iterations"] * exp.sfn_evals_per_step(cfg["toy_krylov_dim"], len(cfg["toy_dampings"]), fd=False)
    assert toy_gd["toy_grad_evals"] == nominal >= toy_sfn


def test_baselines_are_picked_by_validation_not_training_error() -> None:
    cfg = {"gd_lrs": [0.1, 1.0, 10.0], "gdm_lrs": [0.1, 1.0], "gd_evals_lrs": [1.0], "gdm_evals_lrs": [1.0],
           "toy_gd_lrs": [0.3, 1.0], "toy_gdm_lrs": [0.1]}
    seeds = [0, 1, 2]
    val = {0.1: 0.5, 1.0: 0.2, 10.0: 0.3}  # validation prefers lr 1
    train = {0.1: 0.4, 1.0: 0.3, 10.0: 0.1}  # training (and test) would prefer lr 10
    recs = []
    for arm, (part, method, lr) in exp.job_arms(cfg).items():
        for s in seeds:
            if part == "ae":
                v = val.get(lr, 0.2) if lr is not None else 0.05
                t = train.get(lr, 0.2) if lr is not None else 0.05
                m = {"ae_train_mse": t, "ae_val_mse": v + 0.01 * s, "ae_test_mse": t, "ae_grad_evals": 1.0}
                if lr is not None:
                    m["ae_lr"] = lr
            else:
                m = {"toy_depth": (0.9 if lr == 0.3 else 0.1) if lr is not None else 1.0, "toy_grad_evals": 1.0}
                if lr is not None:
                    m["toy_lr"] = lr
            recs.append(JobRecord(arm, s, m))
    derived = exp._derive(cfg, Table(seeds, recs))
    assert derived["gd"]["ae_lr"] == [1.0] * 3 and derived["gd"]["ae_train_mse"] == [0.3] * 3
    assert derived["gd"]["toy_lr"] == [0.3] * 3 and derived["gd"]["toy_depth"] == [0.9] * 3
    assert derived["sfn"]["ae_train_mse"] == [0.05] * 3 and derived["sfn"]["toy_depth"] == [1.0] * 3


def test_the_synthetic_saddle_has_its_stated_critical_points() -> None:
    full, _, _ = _cfgs()
    f, w0, f_star = exp.toy_problem(full, 0)
    d = full["toy_pos"] + full["toy_neg"]
    zero = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(f(zero), zero)
    assert float(g.norm()) == 0.0 and float(f(zero.detach())) == 0.0
    h = torch.autograd.functional.hessian(f, zero.detach())
    ev = torch.linalg.eigvalsh(h)
    assert int((ev < 0).sum()) == full["toy_neg"] and torch.allclose(ev[: full["toy_neg"]], torch.tensor(-full["toy_b"], dtype=torch.float64))
    # the minimum: gradient descent from w0 with the negative directions pushed to their minima
    g2 = torch.Generator().manual_seed(1)
    w = torch.nn.Parameter(w0 + 0.5 * torch.randn(d, generator=g2, dtype=torch.float64))
    opt = torch.optim.LBFGS([w], max_iter=500, tolerance_grad=1e-14, tolerance_change=1e-16)

    def closure():
        opt.zero_grad()
        loss = f(w)
        loss.backward()
        return loss

    opt.step(closure)
    assert float(f(w.detach())) == pytest.approx(f_star, rel=1e-6)


def test_quick_run_gives_every_claimed_metric() -> None:
    _, cfg, seeds = _cfgs()
    res = run(exp.EXPERIMENT, cfg, seeds, Env("cpu", repo_root() / "data", quick=True), workers=1)
    spec = get("saddle_free_newton").spec
    for claim in spec.claims:
        for ref in [claim.condition.metric, claim.condition.minus]:
            if ref is None:
                continue
            arm, metric = ref.split(".", 1)
            values = res.metrics[arm][metric]
            assert all(math.isfinite(v) for v in values), ref
