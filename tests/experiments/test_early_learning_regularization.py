"""The ELR experiment on the harness: the ELR arms train through the regulariser with their beta/lambda and
the batch's example indices, CE through plain cross-entropy, from the same init and batches."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

import zoo.experiments._classbench as cb
import zoo.workloads.classification as workloads
from zoo import harness
from zoo.catalogue import get
from zoo.experiments.early_learning_regularization import EXPERIMENT, ELRObjective
from zoo.harness import JobRecord, Table
from zoo.regularizers.early_learning_regularization import EarlyLearningRegularization
from tests.experiments.budgets import quick_env, spec_budget, quick_run_metrics
from tests.experiments.armspy import JobSpy

ID = "early_learning_regularization"
EXPECTED = {"ce": None, "elr": (0.7, 3.0), "elr_b09_l7": (0.9, 7.0)}


class Spy(JobSpy):
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(monkeypatch, EXPERIMENT)
        self.elr_calls: dict[tuple[str, int], list[tuple[float, float, torch.Tensor, torch.Tensor]]] = {}
        self.ce_calls: dict[tuple[str, int], int] = {}
        self.tasks: dict[tuple[str, int], Any] = {}
        self.batches: dict[tuple[str, int], list[torch.Tensor]] = {}
        real_forward = EarlyLearningRegularization.forward
        real_loss = cb.Objective.loss
        spy = self

        def forward(self_: EarlyLearningRegularization, input: torch.Tensor, target: torch.Tensor,
                    index: torch.Tensor) -> torch.Tensor:
            spy.elr_calls[spy.current].append((self_.beta, self_.lam, index.clone(), target.clone()))
            spy.batches[spy.current].append(index.clone())
            return real_forward(self_, input, target, index)

        def base_loss(self_: Any, model: torch.nn.Module, batch: Any) -> torch.Tensor:
            spy.ce_calls[spy.current] += 1
            spy.batches[spy.current].append(batch.idx.clone())
            return real_loss(self_, model, batch)

        real_init = ELRObjective.__init__

        def elr_init(self_: ELRObjective, task: Any, *a: Any, **kw: Any) -> None:
            spy.tasks[spy.current] = task
            real_init(self_, task, *a, **kw)

        monkeypatch.setattr(EarlyLearningRegularization, "forward", forward)
        monkeypatch.setattr(cb.Objective, "loss", base_loss)
        monkeypatch.setattr(ELRObjective, "__init__", elr_init)

    def start_job(self, key: tuple[str, int]) -> None:
        self.elr_calls[key], self.ce_calls[key], self.batches[key] = [], 0, []


def _small_cfg() -> dict[str, Any]:
    cfg, _ = spec_budget(ID, quick=False)
    return {**cfg, "epochs": 2, "settings": {"sym40": cfg["settings"]["sym40"]}}


def test_arm_table() -> None:
    cfg, _ = spec_budget(ID, quick=False)
    got = {a: (None if not v else (v["beta"], v["lam"])) for a, v in cfg["arms"].items()}
    assert got == EXPECTED
    assert list(get(ID).spec.reproduction.arms) == list(EXPECTED)


def test_each_arm_trains_its_objective_with_example_indices(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    cfg = _small_cfg()
    harness.run(EXPERIMENT, cfg, [0], quick_env(), workers=1)
    for arm, hp in EXPECTED.items():
        key = (f"{arm}__sym40", 0)
        if hp is None:
            assert spy.ce_calls[key] > 0 and not spy.elr_calls[key]
            continue
        calls = spy.elr_calls[key]
        assert calls and spy.ce_calls[key] == 0
        task = spy.tasks[key]
        seen = torch.cat([c[2] for c in calls])
        # every step: the arm's beta and lambda, labels that are the observed labels of the indices
        for beta, lam, idx, y in calls:
            assert (beta, lam) == hp
            assert torch.equal(y, task.y_train[idx])
        # each epoch visits every training example once
        assert torch.equal(seen.sort().values, torch.arange(task.n_train).repeat(cfg["epochs"]).sort().values)
    ref = ("ce__sym40", 0)
    for arm in EXPECTED:
        key = (f"{arm}__sym40", 0)
        for k, v in spy.init[key].items():
            assert torch.equal(v, spy.init[ref][k]), (arm, k)
        assert all(torch.equal(a, b) for a, b in zip(spy.batches[key], spy.batches[ref], strict=True))


def test_the_targets_follow_the_model_and_change_training() -> None:
    """ELR's targets fill up from predictions; with lam = 0 ELR trains exactly like CE."""
    cfg = _small_cfg()
    env = quick_env()
    setup = EXPERIMENT.setup(cfg, env)
    from zoo.experiments._classbench import Method, fit, setting_config
    from zoo.training.seed import seed_everything
    from zoo.experiments.early_learning_regularization import _elr
    scfg = setting_config(cfg, "sym40")
    task = workloads.make_task(scfg, setup["digits"], 0)
    outs = {}
    for name, meth in {"ce": Method(), "elr0": Method(objective=_elr(0.7, 0.0)), "elr": Method(objective=_elr(0.7, 3.0))}.items():
        seed_everything(0)
        outs[name] = fit(meth, task, scfg, 0, "cpu").metrics
    assert outs["ce"]["test_nll"] == pytest.approx(outs["elr0"]["test_nll"], rel=1e-6)
    assert outs["ce"]["test_nll"] != pytest.approx(outs["elr"]["test_nll"], rel=1e-3)


def test_memorised_vs_ce_is_the_per_seed_ratio() -> None:
    cfg = {"settings": {"sym40": {}}, "arms": {"ce": {}, "elr": {"beta": 0.7, "lam": 3.0}}, "headline": "sym40"}
    recs = []
    for arm, vals in {"ce__sym40": [20.0, 40.0], "elr__sym40": [5.0, 4.0]}.items():
        for s, v in zip([0, 1], vals):
            recs.append(JobRecord(arm, s, {"memorised": v, "test_acc": 1.0, "test_ece": 2.0}, {}))
    out = EXPERIMENT.derive(cfg, Table([0, 1], recs))
    assert out["elr"]["sym40_memorised_vs_ce"] == [0.25, 0.1]
    assert out["ce"]["sym40_memorised_vs_ce"] == [1.0, 1.0]
    assert out["elr"]["test_acc"] == [1.0, 1.0]


def test_quick_run_produces_every_declared_metric(tmp_path) -> None:
    quick_run_metrics(ID, tmp_path)
