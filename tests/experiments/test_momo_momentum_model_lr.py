"""Wiring tests for zoo.experiments.momo_momentum_model_lr: they fail when the experiment is mis-wired.

* every job arm builds the optimizer its method names, at its grid point, with the pair's shared
  settings (SGD-M in MoMo's averaged form: momentum = dampening = 0.9; lower bound 0);
* each pair shares its grid, and the pairing is exact where the paper says it is: MoMo whose cap
  is never active is SGD-M in the averaged form, MoMo-Adam with an inactive cap is Adam;
* the band width is computed as specified (hand-made curves), per seed, from TEST accuracy over
  the whole grid, while the reported grid point is chosen by VALIDATION accuracy;
* a quick run produces every metric the claims need.
"""

from __future__ import annotations

import functools

import math
from typing import Any

import pytest
import torch

from zoo.catalogue import get
from zoo.experiments import momo_momentum_model_lr as exp
from zoo.experiments._optbench import job_arms, slug
from tests.experiments.budgets import quick_env, setup_context, spec_budget
from zoo.harness import JobContext, JobRecord, Table, run
from zoo.optim.momo import MoMo, MoMoAdam

ID = "momo_momentum_model_lr"


_cfg = functools.partial(spec_budget, ID)
_env = quick_env


# ----------------------------------------------------------------------------- arms
def test_every_job_arm_builds_the_optimizer_it_names() -> None:
    cfg, _ = _cfg(quick=False)
    ms = exp._methods(cfg)
    jobs = job_arms(ms, cfg)
    assert len(jobs) == 4 * 9 * len(cfg["workloads"]), "four methods x nine grid points x workloads"
    expected = {"momo": MoMo, "sgdm_grid": torch.optim.SGD, "momo_adam": MoMoAdam, "adam_grid": torch.optim.Adam}
    for arm, (m, w, lr) in jobs.items():
        p = torch.nn.Parameter(torch.zeros(3))
        opt, sched = ms[m].build([p], 100, lr, cfg, None)  # type: ignore[arg-type, misc]
        g = opt.param_groups[0]
        assert type(opt) is expected[m], arm
        assert sched is None, f"{arm}: the sweep is at a constant learning rate"
        assert g["lr"] == lr, arm
        if m == "sgdm_grid":
            assert g["momentum"] == 0.9 and g["dampening"] == 0.9 and not g["nesterov"], arm
        if m == "momo":
            assert opt.beta == 0.9 and opt.lb == 0.0 and not opt.bias_correction and not opt.use_fstar
            assert g["weight_decay"] == 0.0
        if m in ("momo_adam", "adam_grid"):
            assert tuple(g["betas"]) == (0.9, 0.999) and g["weight_decay"] == 0.0, arm
        if m == "momo_adam":
            assert opt.lb == 0.0 and not opt.use_fstar


def test_each_pair_shares_its_grid() -> None:
    cfg, _ = _cfg(quick=False)
    ms = exp._methods(cfg)
    for a, b in exp.PAIRS:
        assert ms[a].lrs == ms[b].lrs and len(ms[a].lrs or ()) == 9, (a, b)
        lrs = ms[a].lrs or ()
        assert all(math.isclose(y / x, 10**0.5, rel_tol=0.06) for x, y in zip(lrs, lrs[1:])), "half-decade steps"


def _batches(n: int = 12) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(n)]


def _train(make: Any, closure: bool) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    opt = make(list(model.parameters()))
    for x, y in _batches():
        def f() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x.double()), y)
            loss.backward()
            return loss
        if closure:
            opt.step(f)
        else:
            f()
            opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("lr", [1e-4, 1e-3])
def test_momo_with_inactive_cap_is_the_paired_sgdm(lr: float) -> None:
    cfg, _ = _cfg(quick=False)
    ms = exp._methods(cfg)
    momo = _train(lambda ps: ms["momo"].build(ps, 1, lr, cfg, None)[0], closure=True)  # type: ignore[misc]
    sgdm = _train(lambda ps: ms["sgdm_grid"].build(ps, 1, lr, cfg, None)[0], closure=False)  # type: ignore[misc]
    for a, b in zip(momo, sgdm):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # and at a large cap MoMo's truncated step departs from SGD-M (the cap is active)
    big = _train(lambda ps: ms["momo"].build(ps, 1, 10.0, cfg, None)[0], closure=True)  # type: ignore[misc]
    big_sgd = _train(lambda ps: ms["sgdm_grid"].build(ps, 1, 10.0, cfg, None)[0], closure=False)  # type: ignore[misc]
    assert not all(torch.allclose(a, b) for a, b in zip(big, big_sgd))


@pytest.mark.parametrize("lr", [1e-5, 1e-4])
def test_momo_adam_with_inactive_cap_is_the_paired_adam(lr: float) -> None:
    cfg, _ = _cfg(quick=False)
    ms = exp._methods(cfg)
    a = _train(lambda ps: ms["momo_adam"].build(ps, 1, lr, cfg, None)[0], closure=True)  # type: ignore[misc]
    b = _train(lambda ps: ms["adam_grid"].build(ps, 1, lr, cfg, None)[0], closure=False)  # type: ignore[misc]
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- band width
def test_band_width_by_hand() -> None:
    lrs = [1e-3, 1e-2, 1e-1, 1.0, 10.0]
    assert exp.band_width(lrs, [50.0, 90.0, 89.5, 89.0, 10.0], 1.0) == pytest.approx(2.0)  # 1e-2 .. 1
    assert exp.band_width(lrs, [50.0, 90.0, 88.0, 89.5, 10.0], 1.0) == pytest.approx(0.0), "contiguous only"
    assert exp.band_width(lrs, [90.0] * 5, 1.0) == pytest.approx(4.0)
    assert exp.band_width(lrs, [90.0, 89.0, math.nan, 90.0, 90.0], 1.0) == pytest.approx(1.0), \
        "ties go to the smaller lr; NaN never qualifies"
    assert exp.band_width(lrs, [80.0, 85.0, 90.0, 85.0, 80.0], 5.0) == pytest.approx(2.0)
    assert exp.band_width(lrs, [90.0, 80.0, 90.0, 89.5, 70.0], 1.0) == pytest.approx(0.0), \
        "of two tied best points, the band is the smaller lr's"


def _hand_table(cfg: dict[str, Any]) -> Table:
    """Grid jobs whose validation and test accuracies disagree about the best grid point.

    Test accuracy: seed 0 flat over the whole grid, seed 1 peaked at one point. Validation:
    the largest learning rate is best on average.
    """
    seeds, recs = [0, 1], []
    for arm, (m, w, lr) in job_arms(exp._methods(cfg), cfg).items():
        lrs = sorted(exp._methods(cfg)[m].lrs or ())
        i = lrs.index(lr)
        for s in seeds:
            test = 90.0 if s == 0 else (90.0 if i == 1 else 70.0)
            recs.append(JobRecord(arm, s, {"test_acc": test, "val_acc": 50.0 + i, "train_loss": 0.1,
                                           "grad_evals": 1.0, "diverged": 0.0, "lr": lr}))
    return Table(seeds, recs)


def test_band_is_per_seed_on_test_and_the_pick_is_by_validation() -> None:
    cfg = {**_cfg()[0], "workloads": ["digits_mlp"], "sgd_lrs": [0.01, 0.1, 1.0], "adam_lrs": [0.001, 0.01, 0.1]}
    table = _hand_table(cfg)
    derived = exp.EXPERIMENT.derive(cfg, table)  # type: ignore[misc]
    for m in ("momo", "sgdm_grid", "momo_adam", "adam_grid"):
        lrs = sorted(exp._methods(cfg)[m].lrs or ())
        assert derived[m]["digits_mlp_lr_band"] == pytest.approx([2.0, 0.0]), m
        assert derived[m]["digits_mlp_lr"] == [lrs[-1]] * 2, f"{m}: the validation-best point, not the test-best"


# ----------------------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def quick_run() -> Any:
    cfg, seeds = _cfg()
    return run(exp.EXPERIMENT, cfg, seeds, _env(), workers=1)


def test_quick_run_has_every_metric_and_panel(quick_run: Any) -> None:
    cfg, _ = _cfg()
    spec = get(ID).spec
    for arm in spec.reproduction.arms:
        for w in cfg["workloads"]:
            assert f"{w}_lr_band" in quick_run.metrics[arm] and f"{w}_test_acc" in quick_run.metrics[arm], arm
    for c in spec.active_claims():
        for ref in c.refs():
            arm, metric = ref.split(".")
            assert arm in spec.reproduction.arms and metric in spec.reproduction.metrics, ref
            assert len(quick_run.metrics[arm][metric]) == 1, f"the quick run must produce {ref}"
    titles = [c.title for c in quick_run.curves]
    assert sum("vs constant learning rate" in t for t in titles) == len(exp.PAIRS) * len(cfg["workloads"])
    for c in quick_run.curves:
        assert all(len(ys) == len(c.x) for ys in c.series.values()), c.title


def test_a_job_runs_the_named_optimizer(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = _cfg()
    steps: list[str] = []
    for name, cls in (("MoMo", MoMo), ("MoMoAdam", MoMoAdam)):
        class Spy(cls):  # type: ignore[misc, valid-type]
            def step(self, closure: Any = None, loss: Any = None, _n: str = name) -> Any:
                steps.append(_n)
                return super().step(closure, loss)
        monkeypatch.setattr(exp, name, Spy)
    from zoo.harness import _seeded

    env = _env()
    ctx = JobContext(env, exp.EXPERIMENT.setup(cfg, env), None, None)  # type: ignore[misc]
    for arm, want in ((f"momo__digits_mlp__lr{slug(1.0)}", "MoMo"), (f"momo_adam__digits_mlp__lr{slug(0.1)}", "MoMoAdam")):
        steps.clear()
        _seeded(0)
        out = exp.EXPERIMENT.job(cfg, arm, 0, ctx)
        assert steps and set(steps) == {want}, arm
        assert len(steps) == out.metrics["grad_evals"]
    steps.clear()
    _seeded(0)
    exp.EXPERIMENT.job(cfg, f"sgdm_grid__digits_mlp__lr{slug(1.0)}", 0, ctx)
    assert not steps, "the SGD-M arm must not step MoMo"
