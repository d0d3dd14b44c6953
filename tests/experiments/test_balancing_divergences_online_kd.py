"""The BD-KD experiment on the harness: which loss each network trains with, shared inits, the student is evaluated.

An experiment that trained the BD-KD arm with DML's losses (or the reverse), left the teacher out
of the optimizer, gave the arms different student or teacher initialisations, or evaluated the
teacher instead of the student fails here.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import zoo.experiments.balancing_divergences_online_kd as exp
import zoo.workloads.classification as workloads
from zoo import harness
from zoo.catalogue import get
from zoo.experiments.balancing_divergences_online_kd import EXPERIMENT
from zoo.metrics.classification import accuracy
from tests.experiments.budgets import quick_env, spec_budget, quick_run_metrics

ID = "balancing_divergences_online_kd"


def _cfg(**over: Any) -> dict[str, Any]:
    return {**spec_budget(ID, quick=False)[0], **over}


def test_each_network_trains_with_its_arms_loss_from_shared_inits(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, list[str]] = {}
    built: dict[str, list[torch.nn.Module]] = {}
    init: dict[str, list[dict[str, torch.Tensor]]] = {}
    current = [""]

    def spy(name: str) -> Any:
        real = getattr(exp, name)

        def f(*a: Any, **kw: Any) -> torch.Tensor:
            calls[current[0]].append(name)
            return real(*a, **kw)
        return f

    for name in ("bd_kd_student_loss", "dml_student_loss", "online_kd_teacher_loss"):
        monkeypatch.setattr(exp, name, spy(name))
    real_mlp, real_job = workloads.MLP, EXPERIMENT.job

    def mlp(*a: Any, **kw: Any) -> torch.nn.Module:
        m = real_mlp(*a, **kw)
        built[current[0]].append(m)
        init[current[0]].append({k: v.detach().clone() for k, v in m.state_dict().items()})
        return m

    outs: dict[str, Any] = {}

    def job(cfg: dict[str, Any], arm: str, seed: int, ctx: Any) -> Any:
        current[0] = arm
        calls[arm], built[arm], init[arm] = [], [], []
        outs[arm] = real_job(cfg, arm, seed, ctx)
        return outs[arm]

    monkeypatch.setattr(workloads, "MLP", mlp)
    monkeypatch.setattr(EXPERIMENT, "job", job)
    cfg = _cfg(epochs=1)
    harness.run(EXPERIMENT, cfg, [3], quick_env(), workers=1)
    steps = math.ceil(3200 / cfg["batch_size"])
    assert calls["ce"] == []
    assert calls["dml"] == ["dml_student_loss", "dml_student_loss"] * steps
    assert calls["bdkd"] == ["bd_kd_student_loss", "online_kd_teacher_loss"] * steps
    # student (first draw) shared by all arms; the teacher (second model) shared by both KD arms
    assert len(built["ce"]) == 1 and len(built["dml"]) == len(built["bdkd"]) == 2
    for arm in ("dml", "bdkd"):
        assert all(torch.equal(v, init["ce"][0][k]) for k, v in init[arm][0].items())
        assert all(torch.equal(v, init["dml"][1][k]) for k, v in init[arm][1].items())
        # the teacher is the wide network and it was trained (it is in the optimizer)
        assert built[arm][1][0].out_features == 256
        assert not torch.equal(built[arm][1][0].weight, init[arm][1]["0.weight"])
    # the evaluated model is the student
    task = workloads.make_task(cfg, EXPERIMENT.setup(cfg, quick_env())["mnist1d"], 3)
    for arm in ("ce", "dml", "bdkd"):
        with torch.no_grad():
            acc = accuracy(built[arm][0].eval()(task.x_test), task.y_test)
        assert outs[arm].metrics["test_acc"] == pytest.approx(acc), arm
    assert "teacher_test_acc" in outs["bdkd"].metrics and "teacher_test_acc" not in outs["ce"].metrics


def test_quick_run_produces_every_claimed_metric(tmp_path: Any) -> None:
    # every declared metric, the teacher's only on the arms that train one
    metrics = quick_run_metrics(ID, tmp_path, workers=1,
                                skip=lambda arm, m: m.startswith("teacher_") and arm not in ("dml", "bdkd"))
    spec = get(ID).spec
    for arm in spec.reproduction.arms:
        assert {"test_acc", "test_ece"} <= set(metrics[arm])
