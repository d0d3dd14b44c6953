"""The compressing-features experiment on the harness: each arm's compression and co-teaching reach training.

An experiment whose nested arms lacked the nested layer (or its K selection), whose dropout arm
had no dropout, whose co-teaching arms skipped the peer, the schedule or the two stages, or whose
arms started from different weights fails here.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

import zoo.experiments.compressing_features_noisy_labels as exp
from zoo import harness
from zoo.catalogue import get
from zoo.experiments.compressing_features_noisy_labels import EXPERIMENT
from zoo.regularizers.nested_dropout import NestedDropout
from tests.experiments.budgets import quick_env, spec_budget, quick_run_metrics

ID = "compressing_features_noisy_labels"
ARMS = ["ce", "dropout", "nested", "coteach", "nested_coteach"]


def _cfg(**over: Any) -> dict[str, Any]:
    return {**spec_budget(ID, quick=False)[0], **over}


def test_arms_train_with_their_method_from_the_same_init(monkeypatch: pytest.MonkeyPatch) -> None:
    rec: dict[str, dict[str, Any]] = {}
    current = [""]
    real_ct = exp.co_teaching_loss
    real_job = EXPERIMENT.job

    def ct(lf: torch.Tensor, lg: torch.Tensor, y: torch.Tensor, rate: float, **kw: Any) -> Any:
        rec[current[0]]["rates"].append(rate)
        assert kw.get("select_f") is not None and kw.get("select_g") is not None
        return real_ct(lf, lg, y, rate, **kw)

    real_make = exp.Method.make

    def make(self: Any, task: Any, cfg: Any, model: nn.Module) -> Any:
        obj = real_make(self, task, cfg, model)
        r = rec[current[0]]
        r["model"], r["obj"] = model, obj
        r["init"] = [p.detach().clone() for p in model.parameters()]
        r["peer_init"] = [p.detach().clone() for m in obj.modules() for p in m.parameters()]
        return obj

    def job(cfg: dict[str, Any], arm: str, seed: int, ctx: Any) -> Any:
        current[0] = arm
        rec[arm] = {"rates": []}
        rec[arm]["out"] = real_job(cfg, arm, seed, ctx)
        return rec[arm]["out"]

    monkeypatch.setattr(exp, "co_teaching_loss", ct)
    monkeypatch.setattr(exp.Method, "make", make)
    monkeypatch.setattr(EXPERIMENT, "job", job)
    cfg = _cfg(epochs=4, nested_stage_epochs=2, t_k=2, settings={"sym40": {"noise": {"kind": "symmetric", "rate": 0.4}}})
    harness.run(EXPERIMENT, cfg, [0], quick_env(), workers=1)
    recs = {a: rec[f"{a}__sym40"] for a in ARMS}
    steps = math.ceil(1037 / cfg["batch_size"])
    kinds = {a: [type(m).__name__ for m in r["model"].children()] for a, r in recs.items()}
    assert "Dropout" not in kinds["ce"] and "NestedDropout" not in kinds["ce"]
    assert kinds["dropout"][-2] == "Dropout" and recs["dropout"]["model"][-2].p == 0.3
    for a in ("nested", "nested_coteach"):
        layer = list(recs[a]["model"].children())[-2]
        assert isinstance(layer, NestedDropout) and layer.sigma == 10.0
        # K was chosen on validation: the recorded K is the layer's test-time K
        assert recs[a]["out"].metrics["nested_k"] == layer.k_eval
    # same initial weights of the evaluated network in every arm
    for a in ARMS:
        assert all(torch.equal(p, q) for p, q in zip(recs[a]["init"], recs["ce"]["init"], strict=True)), a
    # co-teaching: Han et al.'s ramp from epoch 1 (linspace(0, tau, T_k)); the two-stage arm starts after the nested stage
    assert recs["coteach"]["rates"] == pytest.approx([0.0] * steps + [0.4] * 3 * steps)
    assert recs["nested_coteach"]["rates"] == pytest.approx([0.0] * 3 * steps + [0.4] * steps)
    assert recs["ce"]["rates"] == [] and recs["nested"]["rates"] == []
    peer = recs["coteach"]["obj"].peer
    assert not any(torch.equal(p, q) for p, q in zip(peer.parameters(), recs["coteach"]["init"]))  # its own init
    assert isinstance(list(recs["nested_coteach"]["obj"].peer.children())[-2], NestedDropout)
    # the peer was trained: it is in the optimizer
    for a in ("coteach", "nested_coteach"):
        now = list(recs[a]["obj"].peer.parameters())
        assert len(now) == len(recs[a]["peer_init"]) > 0
        assert all(not torch.equal(p, q) for p, q in zip(now, recs[a]["peer_init"])), a


def test_quick_run_produces_every_claimed_metric(tmp_path: Any) -> None:
    # every declared metric, the chosen K only on the nested-dropout arms
    metrics = quick_run_metrics(ID, tmp_path, workers=1,
                                skip=lambda arm, m: m.endswith("_nested_k") and arm not in ("nested", "nested_coteach"))
    spec = get(ID).spec
    for arm in spec.reproduction.arms:
        assert {"sym40_test_acc", "sym40_test_ece", "pair30_test_acc", "pair30_test_ece"} <= set(metrics[arm])
