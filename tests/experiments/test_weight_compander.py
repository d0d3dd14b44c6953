"""Weight compander experiment wiring: the WC arm trains the reparametrised model, from the shared init and batches."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch.nn.utils import parametrize

import zoo.experiments.weight_compander as exp
import zoo.workloads.classification as workloads
from tests.experiments.budgets import quick_env, spec_budget, quick_run_metrics
from zoo import harness
from zoo.catalogue import get
from zoo.experiments.weight_compander import EXPERIMENT, arms_of
from zoo.regularizers.weight_compander import effective_weights

ID = "weight_compander"


def test_arm_table_matches_the_spec() -> None:
    cfg, _ = spec_budget(ID, quick=False)
    arms = arms_of(cfg)
    assert arms["plain"] is None and arms["wc"] == {"alpha": 0.2, "beta": 10.0}
    assert list(EXPERIMENT.arms(cfg)) == list(get(ID).spec.reproduction.arms)


def test_wc_arm_trains_the_reparametrised_model_from_the_shared_init(monkeypatch: pytest.MonkeyPatch) -> None:
    cur: list[Any] = [None]
    init: dict[Any, list[torch.Tensor]] = {}
    models: dict[Any, torch.nn.Module] = {}
    calls: list[Any] = []
    batches: dict[Any, list[torch.Tensor]] = {}
    real_mlp, real_job, real_rep = workloads.MLP, EXPERIMENT.job, exp._reparametrise
    real_loss = exp.WeightStats.loss

    def mlp(*a: Any, **k: Any) -> torch.nn.Module:
        m = real_mlp(*a, **k)
        init[cur[0]] = [w.clone() for w in effective_weights(m)]
        models[cur[0]] = m
        return m

    def rep(model, task, cfg, opts):
        calls.append((cur[0], dict(opts)))
        return real_rep(model, task, cfg, opts)

    def loss(self, model, batch):
        batches[cur[0]].append(batch.idx.clone())
        assert model is models[cur[0]]
        return real_loss(self, model, batch)

    def job(cfg, arm, seed, ctx):
        cur[0] = (arm, seed)
        batches[cur[0]] = []
        return real_job(cfg, arm, seed, ctx)

    monkeypatch.setattr(workloads, "MLP", mlp)
    monkeypatch.setattr(exp, "_reparametrise", rep)
    monkeypatch.setattr(exp.WeightStats, "loss", loss)
    monkeypatch.setattr(EXPERIMENT, "job", job)
    cfg, _ = spec_budget(ID, quick=True)
    cfg["n_train"] = 600
    res = harness.run(EXPERIMENT, cfg, [0], quick_env(), workers=1)
    assert calls == [(("wc", 0), {"alpha": 0.2, "beta": 10.0})]
    wc_model, plain_model = models[("wc", 0)], models[("plain", 0)]
    lin = [m for m in wc_model.modules() if isinstance(m, torch.nn.Linear)]
    assert lin and all(parametrize.is_parametrized(m, "weight") for m in lin)
    assert not any(parametrize.is_parametrized(m, "weight") for m in plain_model.modules()
                   if isinstance(m, torch.nn.Linear))
    # the shared init (drawn before the transform) and the same batches
    for a, b in zip(init[("wc", 0)], init[("plain", 0)], strict=True):
        assert torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(batches[("wc", 0)], batches[("plain", 0)], strict=True))
    # training moved both, differently; and the compander cap holds on the trained WC weights
    after = [list(effective_weights(m)) for m in (wc_model, plain_model)]
    assert not torch.allclose(after[0][0], after[1][0])
    assert all(float(w.abs().max()) < 0.2 * math.pi / 2 for w in after[0])
    assert res.metrics["wc"]["wc_alpha"] == [pytest.approx(0.2)]
    assert "wc_alpha" not in res.metrics["plain"]


def test_weight_stats_measure_the_effective_weights() -> None:
    task = workloads.make_task({"val_fraction": 0.0}, EXPERIMENT.setup({"dataset": "digits"}, quick_env())["digits"], 0)
    model = workloads.build_model({"kind": "mlp", "hidden": [8]}, task)
    ws = exp.WeightStats(task, {}, model)
    m0 = ws.metrics(model)
    assert m0["max_w_ratio"] == pytest.approx(1.0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    m1 = ws.metrics(model)
    assert m1["near_zero_pct"] == pytest.approx(100.0) and m1["max_w_ratio"] == 0.0


def test_quick_run_produces_every_declared_metric(tmp_path) -> None:
    quick_run_metrics(ID, tmp_path, workers=1)
