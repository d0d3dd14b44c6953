"""The PDP experiment's wiring: each arm runs the method, structure, target and schedule it names."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

import zoo.experiments.pdp_pruning as exp
from zoo.catalogue import get
from zoo.harness import Env, JobContext, run
from zoo.reproduce import base_config
from tests.conftest import REPO

SPEC = get("pdp_pruning")


def _cfg(**over):
    cfg = {k: v for k, v in base_config(SPEC, quick=True).items() if k != "seeds"}
    cfg.update({"n_train": 300, "n_test": 200, "epochs": 3, "warmup_epochs": 1, "ramp_epochs": 1, **over})
    return cfg


@pytest.fixture(scope="module")
def env():
    return Env(device="cpu", data_dir=REPO / "data", quick=True)


def _job(cfg, arm, seed, env):
    data = exp._setup(cfg, env)
    from zoo.harness import _seeded

    _seeded(seed)
    return exp._job(cfg, arm, seed, JobContext(env, data, None, None))


def test_every_arm_of_the_spec_is_wired_and_every_arm_is_in_the_spec():
    assert set(exp.ARMS) == set(SPEC.spec.reproduction.arms) == set(SPEC.spec.reproduction.config["arms"])


@pytest.mark.parametrize("arm,target", [("dense", 0.0), ("gmp_u90", 0.9), ("pdp_u90", 0.9), ("gmp_u97", 0.97),
                                        ("pdp_u97", 0.97), ("gmp_nm14", 0.75), ("pdp_nm14", 0.75)])
def test_each_arm_exports_its_target_sparsity(env, arm, target):
    out = _job(_cfg(), arm, 0, env)
    assert out.metrics["sparsity"] == pytest.approx(target, abs=2e-3)


def test_nm_arms_export_one_of_every_four(env, monkeypatch):
    kept = {}
    real = exp.harden_magnitude, exp.harden

    def spy(which):
        def f(model):
            real[which](model)
            w = [m.weight for _, m in exp.prunable(model)][0]
            kept[which] = (w.reshape(w.shape[0], -1, 4) != 0).sum(-1)
        return f

    monkeypatch.setattr(exp, "harden_magnitude", spy(0))
    monkeypatch.setattr(exp, "harden", spy(1))
    _job(_cfg(), "gmp_nm14", 0, env)
    _job(_cfg(), "pdp_nm14", 0, env)
    assert (kept[0] <= 1).all() and (kept[1] <= 1).all()


def test_pdp_and_gmp_arms_get_their_options_and_the_shared_schedule(env, monkeypatch):
    calls = []

    class SpyPDP(exp.PDP):
        def __init__(self, model, target, **kw):
            calls.append(("pdp", target, kw))
            super().__init__(model, target, **kw)

    class SpyGMP(exp.GradualMagnitudePruning):
        def __init__(self, model, target, **kw):
            calls.append(("gmp", target, kw))
            super().__init__(model, target, **kw)

    monkeypatch.setattr(exp, "PDP", SpyPDP)
    monkeypatch.setattr(exp, "GradualMagnitudePruning", SpyGMP)
    cfg = _cfg(tau=3e-4)
    for arm in ("pdp_u90", "gmp_u90", "pdp_nm14", "gmp_nm14", "dense"):
        _job(cfg, arm, 0, env)
    steps = -(-300 // cfg["batch_size"])
    assert calls[0] == ("pdp", 0.9, {"structure": "unstructured", "tau": 3e-4})
    assert calls[1][0] == "gmp" and calls[1][1] == 0.9
    assert calls[1][2]["begin_step"] == steps and calls[1][2]["end_step"] == 2 * steps
    assert calls[2] == ("pdp", 0.75, {"structure": "1:4", "tau": 3e-4})
    assert calls[3][2]["structure"] == "1:4" and calls[3][2]["begin_step"] == steps
    assert len(calls) == 4, "the dense arm prunes nothing"


def test_arms_share_the_initialisation_and_batch_order_of_their_seed(env, monkeypatch):
    inits, orders = [], []
    real_mlp, real_train = exp.MLP, exp.train

    def spy_mlp(*a, **kw):
        m = real_mlp(*a, **kw)
        inits.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
        return m

    def spy_train(model, data, opt, **kw):
        orders.append(torch.randperm(data.n_train, generator=copy.deepcopy(kw["generator"])))
        return real_train(model, data, opt, **kw)

    monkeypatch.setattr(exp, "MLP", spy_mlp)
    monkeypatch.setattr(exp, "train", spy_train)
    cfg = _cfg(epochs=1)
    for seed in (0, 1):
        for arm in ("dense", "gmp_u90", "pdp_u90"):
            _job(cfg, arm, seed, env)
    for i in (0, 3):  # three arms per seed
        assert all(torch.equal(inits[i], w) for w in inits[i + 1 : i + 3])
        assert all(torch.equal(orders[i], o) for o in orders[i + 1 : i + 3])
    assert not torch.equal(inits[0], inits[3]) and not torch.equal(orders[0], orders[3])


def test_pdp_arm_differs_from_gmp_and_dense(env):
    cfg = _cfg()
    accs = {a: _job(cfg, a, 0, env).metrics["test_acc"] for a in ("dense", "gmp_u90", "pdp_u90")}
    assert len(set(accs.values())) == 3, accs


def test_quick_jobs_are_identical_for_one_and_two_workers(env):
    cfg = _cfg(epochs=1, arms=["dense", "pdp_u90", "gmp_nm14"])
    one = run(exp.EXPERIMENT, cfg, [0, 1], env, workers=1)
    two = run(exp.EXPERIMENT, copy.deepcopy(cfg), [0, 1], env, workers=2)
    assert [dataclasses.asdict(j) for j in one.jobs] == [dataclasses.asdict(j) for j in two.jobs]
    assert one.curves[0].series.keys() == {"dense", "pdp_u90", "gmp_nm14"}
