"""The fixed-predictor rejection experiment: the predictor is trained then fixed, both rejectors train on it, metrics."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch

import zoo.experiments.learning_to_reject_fixed_predictor as exp
from tests.experiments.budgets import quick_env, spec_budget
from zoo import harness
from zoo.catalogue import get
from zoo.reproduce import main

ID = "learning_to_reject_fixed_predictor"


class _Spy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.objectives: list[exp.FixedPredictorRejection] = []
        self.surrogate_calls: list[dict[str, Any]] = []
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}
        real_init, real_end, real_sur = exp.FixedPredictorRejection.__init__, exp.FixedPredictorRejection.on_epoch_end, exp.rejection_surrogate
        spy = self

        def init(self, task, cfg, model):  # noqa: ANN001
            real_init(self, task, cfg, model)
            self.model_ref = model
            spy.objectives.append(self)

        def end(self, model, epoch):  # noqa: ANN001
            real_end(self, model, epoch)
            spy.snapshots[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            spy.snapshots[epoch]["rej"] = torch.cat([p.detach().flatten().clone() for p in self.rejectors.parameters()])

        def sur(r, correct, **kw):  # noqa: ANN001
            spy.surrogate_calls.append({"kw": kw, "correct": correct.clone()})
            return real_sur(r, correct, **kw)

        monkeypatch.setattr(exp.FixedPredictorRejection, "__init__", init)
        monkeypatch.setattr(exp.FixedPredictorRejection, "on_epoch_end", end)
        monkeypatch.setattr(exp, "rejection_surrogate", sur)


def test_predictor_is_fixed_while_the_rejectors_train(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _Spy(monkeypatch)
    cfg, _ = spec_budget(ID)
    cfg = {**cfg, "epochs": 4, "predictor_epochs": 2, "n_train": 400}
    res = harness.run(exp.EXPERIMENT, cfg, [0], quick_env(), workers=1)
    s = spy.snapshots
    pred_keys = [k for k in s[1] if k != "rej"]
    # the predictor moves in its phase, never after
    assert any(not torch.equal(s[1][k], s[2][k]) for k in pred_keys)
    assert all(torch.equal(s[2][k], s[4][k]) for k in pred_keys)
    # the rejectors do not move in the predictor phase, and do after
    assert torch.equal(s[1]["rej"], s[2]["rej"]) and not torch.equal(s[2]["rej"], s[4]["rej"])
    # the surrogate is the one trained, with the config's c and alpha, on labels of both kinds
    assert spy.surrogate_calls and all(c["kw"] == {"c": 0.2, "alpha": 4.0} for c in spy.surrogate_calls)
    labels = torch.cat([c["correct"] for c in spy.surrogate_calls])
    assert 0 < int(labels.sum()) < labels.numel()
    m = res.metrics["reject"]
    assert m["cov_maxprob"][0] != m["cov_surrogate"][0] or m["cov_surrogate"][0] != m["cov_logistic"][0]


def test_rejectors_share_their_initialisation_and_the_labels_are_the_fixed_predictors_correctness() -> None:
    from zoo.workloads.classification import build_model, load_base, make_task
    cfg, _ = spec_budget(ID)
    cfg = {**cfg, "n_train": 200}
    env = quick_env()
    task = make_task(cfg, load_base(cfg["dataset"], env.data_dir), 0)
    model = build_model(cfg["model"], task)
    obj = exp.FixedPredictorRejection(task, cfg, model)
    a, b = obj.rejectors["surrogate"].state_dict(), obj.rejectors["logistic"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    probs, correct = obj._labels(model, task.x_val, task.y_val)
    torch.testing.assert_close(correct, (model(task.x_val).argmax(-1) == task.y_val).long())
    # metrics: coverage of a perfect rejector is (1 - e) / (1 - e/2)
    m = obj.metrics(model)
    e = m["test_err"] / 100
    assert m["cov_oracle"] == pytest.approx(100 * min(1.0, (1 - e) / (1 - e / 2)))
    assert m["target_risk"] == pytest.approx(50 * e)
    with pytest.raises(ValueError):
        exp.FixedPredictorRejection(task, {**cfg, "predictor_epochs": cfg["epochs"]}, model)


def test_quick_run_produces_every_claim_metric(tmp_path) -> None:
    spec = get(ID).spec
    assert main([ID, "--quick", "--no-progress", "--workers", "1", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())["arms"]
    for c in spec.claims:
        for ref in c.refs():
            arm, m = ref.split(".")
            assert all(math.isfinite(v) for v in metrics[arm][m]), ref
    assert set(metrics["reject"]) == set(spec.reproduction.metrics)
