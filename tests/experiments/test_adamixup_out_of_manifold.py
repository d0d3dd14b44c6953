"""AdaMixUp experiment wiring: each arm trains with its own objective, from the shared init and batches."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import zoo.experiments.adamixup_out_of_manifold as exp
import zoo.workloads.classification as workloads
from tests.experiments.budgets import quick_env, spec_budget, quick_run_metrics
from zoo import harness
from zoo.catalogue import get
from zoo.experiments.adamixup_out_of_manifold import EXPERIMENT

ID = "adamixup_out_of_manifold"
ARMS = ["erm", "mixup", "adamixup"]


def test_arms_match_the_spec() -> None:
    cfg, _ = spec_budget(ID, quick=False)
    assert list(EXPERIMENT.arms(cfg)) == ARMS == list(get(ID).spec.reproduction.arms)
    assert cfg["mixup_alpha"] == 1.0


def test_each_arm_trains_with_its_objective_from_the_same_init_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    cur: list[Any] = [None]
    calls: dict[Any, list[str]] = {}
    batches: dict[Any, list[torch.Tensor]] = {}
    init: dict[Any, dict[str, torch.Tensor]] = {}
    extra: dict[Any, Any] = {}
    real_mix, real_ada, real_job = exp.mx.mixup_loss, exp.ada.adamixup_loss, EXPERIMENT.job
    real_cnn = workloads.SmallCNN
    real_base = exp.Objective.loss

    def cnn(*a: Any, **k: Any):
        m = real_cnn(*a, **k)
        init[cur[0]] = {n: v.detach().clone() for n, v in m.state_dict().items()}
        return m

    def spy_mix(model, x, y, alpha, **kw):
        calls[cur[0]].append(f"mixup{alpha:g}")
        return real_mix(model, x, y, alpha, **kw)

    def spy_ada(model, policy, disc, x, y, **kw):
        calls[cur[0]].append("adamixup")
        extra[cur[0]] = (policy, {n: v.detach().clone() for n, v in policy.state_dict().items()}
                         if cur[0] not in extra else extra[cur[0]][1])
        return real_ada(model, policy, disc, x, y, **kw)

    def spy_erm(self, model, batch):
        calls[cur[0]].append("erm")
        batches[cur[0]].append(batch.idx.clone())
        return real_base(self, model, batch)

    def wrap_loss(cls):
        real = cls.loss

        def loss(self, model, batch):
            batches[cur[0]].append(batch.idx.clone())
            return real(self, model, batch)
        return loss

    def job(cfg, arm, seed, ctx):
        cur[0] = (arm, seed)
        calls[cur[0]], batches[cur[0]] = [], []
        return real_job(cfg, arm, seed, ctx)

    monkeypatch.setattr(EXPERIMENT, "job", job)
    monkeypatch.setattr(workloads, "SmallCNN", cnn)
    monkeypatch.setattr(exp.mx, "mixup_loss", spy_mix)
    monkeypatch.setattr(exp.ada, "adamixup_loss", spy_ada)
    monkeypatch.setattr(exp.Objective, "loss", spy_erm)
    for cls in (exp.MixUp, exp.AdaMixUp):
        monkeypatch.setattr(cls, "loss", wrap_loss(cls))
    cfg, _ = spec_budget(ID, quick=True)
    res = harness.run(EXPERIMENT, cfg, [0], quick_env(), workers=1)
    steps = len(batches[("erm", 0)])
    assert steps > 0
    assert calls[("erm", 0)] == ["erm"] * steps
    assert calls[("mixup", 0)] == ["mixup1"] * steps
    assert calls[("adamixup", 0)] == ["adamixup"] * steps
    for arm in ARMS:
        assert all(torch.equal(a, b) for a, b in zip(batches[(arm, 0)], batches[("erm", 0)], strict=True)), arm
        for k, v in init[(arm, 0)].items():
            assert torch.equal(v, init[("erm", 0)][k]), (arm, k)
    # the policy region generator is trained by the shared optimizer
    policy, before = extra[("adamixup", 0)]
    after = policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    m = res.metrics["adamixup"]
    assert 0.0 <= m["policy_a"][0] <= 1.0 and 0.0 <= m["policy_lam"][0] <= 1.0
    assert "policy_a" not in res.metrics["mixup"]


def test_quick_run_produces_every_declared_metric(tmp_path) -> None:
    quick_run_metrics(ID, tmp_path, workers=1,
                      skip=lambda arm, metric: metric.startswith("policy_") and arm != "adamixup")
