"""Wiring tests for zoo.experiments.adam: they fail when the experiment is mis-wired.

* the no-bias-correction ablation (torch's Adam + a LambdaLR factor) is the paper's update
  without the correction, step by step, against a hand-written one;
* every arm builds the torch optimizer it names, with the stated hyper-parameters, and the scaled
  arms really scale the loss (and eps);
* grid arms are picked by the VALIDATION mean, not the test mean; ``best_rival`` is the rival with
  the lowest mean training loss; ``scale_dev`` and ``stable_lrs`` are computed as the spec says;
* a quick run produces every metric the spec's claims read.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from zoo.catalogue import get, repo_root
from zoo.experiments import adam as exp
from zoo.experiments._optbench import job_arms
from zoo.harness import Env, JobRecord, Table, run
from zoo.workloads.optim import get_workload


def _cfg(quick: bool = True) -> dict[str, Any]:
    r = get("adam").spec.reproduction
    assert r is not None
    return {**r.config, **(r.quick.config if quick else {})}


def _hand_adam_nobc(p0: torch.Tensor, grads: list[torch.Tensor], lr: float, b1: float, b2: float, eps: float,
                    eps_scaled: bool = False) -> torch.Tensor:
    """Adam without bias correction, from the paper's Algorithm 1 with the two hat lines removed
    (``eps_scaled``: eps multiplied by sqrt(1 - b2^t), the ablation's stated departure)."""
    p, m, v = p0.clone().double(), torch.zeros_like(p0).double(), torch.zeros_like(p0).double()
    for t, g in enumerate(grads, start=1):
        g = g.double()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        e = eps * math.sqrt(1 - b2**t) if eps_scaled else eps
        p = p - lr * m / (v.sqrt() + e)
    return p


@pytest.mark.parametrize("beta2", [0.999, 0.9999])
def test_no_bias_correction_factor_gives_the_uncorrected_update(beta2: float) -> None:
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(20, generator=g, dtype=torch.float64)
    grads = [torch.randn(20, generator=g, dtype=torch.float64) * (1 + k) for k in range(25)]
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.Adam([p], lr=0.01, betas=(0.9, beta2), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, exp.no_bias_correction_factor(0.9, beta2))
    for gr in grads:
        p.grad = gr.clone()
        opt.step()
        sched.step()
    # exact, once the departure (eps acts as eps sqrt(1 - beta2^t)) is written into the hand version ...
    exact = _hand_adam_nobc(p0, grads, 0.01, 0.9, beta2, 1e-8, eps_scaled=True)
    torch.testing.assert_close(p.detach(), exact, rtol=1e-12, atol=1e-12)
    # ... and within 1e-5 (total movement ~1) of the paper's uncorrected update with a constant eps
    want = _hand_adam_nobc(p0, grads, 0.01, 0.9, beta2, 1e-8)
    torch.testing.assert_close(p.detach(), want, rtol=0, atol=1e-5)
    with_bc = torch.nn.Parameter(p0.clone())
    o2 = torch.optim.Adam([with_bc], lr=0.01, betas=(0.9, beta2))
    for gr in grads:
        with_bc.grad = gr.clone()
        o2.step()
    assert (with_bc.detach() - want).abs().max() > 1e-3, "the ablation must differ from bias-corrected Adam"


def test_first_uncorrected_step_is_the_papers_initialization_bias() -> None:
    f = exp.no_bias_correction_factor(0.9, 0.999)
    assert f(0) == pytest.approx(0.1 / math.sqrt(0.001))  # (1 - b1) / sqrt(1 - b2) at t = 1
    assert f(10_000) == pytest.approx(1.0, abs=1e-4)  # the correction vanishes as t grows


def _build(cfg: dict[str, Any], method: str, lr: float | None = 0.01) -> tuple[torch.optim.Optimizer, Any]:
    meth = exp._methods(cfg)[method]
    p = torch.nn.Parameter(torch.zeros(3))
    assert meth.build is not None
    return meth.build([p], 100, lr, cfg, get_workload("digits_mlp"))


def test_every_arm_builds_the_optimizer_it_names() -> None:
    cfg = _cfg(quick=False)
    expect = {
        "adam": (torch.optim.Adam, {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8}, False),
        "sgd_nesterov": (torch.optim.SGD, {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0}, False),
        "adagrad": (torch.optim.Adagrad, {"lr": 0.01}, False),
        "rmsprop": (torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.99, "momentum": 0}, False),
        "adam_nobc": (torch.optim.Adam, {"betas": (0.9, 0.999)}, True),
        "adam_b2_9999": (torch.optim.Adam, {"lr": 0.01, "betas": (0.9, 0.9999)}, False),
        "adam_b2_9999_nobc": (torch.optim.Adam, {"betas": (0.9, 0.9999)}, True),
        "adam_fixed": (torch.optim.Adam, {"lr": 0.001, "eps": 1e-8}, False),
        "adam_scale_1e3": (torch.optim.Adam, {"lr": 0.001, "eps": 1e-8}, False),
        "adam_scale_1em3": (torch.optim.Adam, {"lr": 0.001, "eps": 1e-8}, False),
        "adam_scale_1e3_eps": (torch.optim.Adam, {"lr": 0.001, "eps": pytest.approx(1e-5)}, False),
        "adam_scale_1em3_eps": (torch.optim.Adam, {"lr": 0.001, "eps": pytest.approx(1e-11)}, False),
    }
    assert set(exp._methods(cfg)) == set(expect)
    for name, (cls, hyper, nobc) in expect.items():
        opt, sched = _build(cfg, name)
        assert type(opt) is cls, name
        for k, v in hyper.items():
            assert opt.param_groups[0][k] == v, (name, k)
        assert (sched is not None) == nobc, name
        if nobc:
            b2 = hyper["betas"][1]
            assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.1 / math.sqrt(1 - b2)), "factor applied at step 1"
    # the fixed-lr arms ignore the grid's lr
    opt, _ = _build(cfg, "adam_scale_1e3", lr=None)
    assert opt.param_groups[0]["lr"] == 0.001


def test_grid_and_ablation_arms_cover_what_the_spec_says() -> None:
    cfg = _cfg(quick=False)
    jobs = job_arms(exp._methods(cfg), cfg)
    for m in ("adam", *exp.RIVALS):
        for w in cfg["workloads"]:
            assert sum(1 for mm, ww, _ in jobs.values() if mm == m and ww == w) == len(cfg["lrs"]) == 9
    for m in exp.ABLATIONS:
        assert {ww for mm, ww, _ in jobs.values() if mm == m} == {"digits_mlp"}
    spec_arms = set(get("adam").spec.reproduction.arms)
    assert set(exp._methods(cfg)) | {"best_rival"} == spec_arms


def test_scaled_loss_scales_the_gradient_exactly() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    base = exp.scaled_ce(1.0)(model, x, y)
    assert exp.scaled_ce(1000.0)(model, x, y).item() == pytest.approx(1000 * base.item(), rel=1e-6)
    assert exp.scale_tag(1000.0) == "1e3" and exp.scale_tag(0.001) == "1em3"
    meth = exp._methods(_cfg())["adam_scale_1em3"]
    assert meth.loss is not None and meth.loss(model, x, y).item() == pytest.approx(1e-3 * base.item(), rel=1e-6)


def _hand_table(cfg: dict[str, Any]) -> Table:
    """Grid jobs whose validation and test rankings disagree; loss scales with known answers."""
    jobs = job_arms(exp._methods(cfg), cfg)
    seeds = [0, 1, 2]
    recs = []
    for arm, (m, w, lr) in jobs.items():
        for s in seeds:
            if lr is None:
                c = next((float(c) for c in cfg["scales"] if arm.startswith(f"adam_scale_{exp.scale_tag(float(c))}")), 1.0)
                off = 1.0 if ("_eps__" in arm or c == 1.0) else 1.001
                loss = 0.5 * (1 + 0.01 * s) * c * off
                recs.append(JobRecord(arm, s, {"val_acc": 50.0, "test_acc": 50.0, "train_loss": loss}))
                continue
            i = list(cfg["lrs"]).index(lr)
            val = 60.0 + (10.0 if i == 1 else 0.0) + s  # validation: the second grid point
            test = 60.0 + (10.0 if i == 0 else 0.0)  # test: the first grid point
            rival_loss = {"adam": 0.3, "sgd_nesterov": 0.2, "adagrad": 0.1, "rmsprop": 0.4}.get(m, 0.3)
            loss = rival_loss * (1 + i) if i < 2 else 5.0  # grid points beyond the second collapse
            recs.append(JobRecord(arm, s, {"val_acc": val, "test_acc": test, "train_loss": loss, "lr": lr}))
    return Table(seeds, recs)


def test_selection_by_validation_rival_by_training_loss_and_derived_metrics() -> None:
    cfg = {**_cfg(), "lrs": [0.001, 0.01, 0.1]}
    t = _hand_table(cfg)
    d = exp.EXPERIMENT.derive(cfg, t)
    for m in ("adam", *exp.RIVALS):
        assert d[m]["digits_mlp_lr"] == [0.01] * 3, "picked by validation (second point), not test (first)"
        assert d[m]["digits_mlp_test_acc"] == [60.0] * 3
    # at the chosen (second) point the losses are 2x the base: adagrad 0.2 is the lowest rival
    assert d["best_rival"]["digits_mlp_train_loss"] == pytest.approx([0.2] * 3)
    assert d["best_rival"]["digits_mlp_rival"] == [1.0] * 3
    assert d["adam"]["digits_mlp_log_train_loss"] == pytest.approx([math.log10(0.6)] * 3)
    # scale_dev: the scaled arms without eps were made 0.1% off, the eps-scaled ones exact
    assert d["adam_scale_1e3"]["digits_mlp_scale_dev"] == pytest.approx([1e-3] * 3)
    assert d["adam_scale_1em3_eps"]["digits_mlp_scale_dev"] == pytest.approx([0.0] * 3, abs=1e-12)
    # stable_lrs: only the first two of three grid points end below log(10)
    for m in ("adam", *exp.ABLATIONS):
        assert d[m]["digits_mlp_stable_lrs"] == [2.0] * 3
    assert "digits_logreg_stable_lrs" not in d["adam"], "the ablation is on the MLP only"


def test_quick_run_produces_every_metric_the_claims_read() -> None:
    cfg = _cfg()
    spec = get("adam").spec
    res = run(exp.EXPERIMENT, cfg, [0], Env("cpu", repo_root() / "data", quick=True), workers=1)
    for claim in spec.active_claims():
        for ref in claim.refs():
            arm, metric = ref.split(".")
            assert metric in res.metrics[arm], ref
    # the exact invariance holds even on the tiny budget; the runs did train
    assert res.metrics["adam_scale_1e3_eps"]["digits_mlp_scale_dev"][0] < 1e-5
    assert res.metrics["adam_fixed"]["digits_mlp_train_loss"][0] < math.log(10) + 0.1
