"""VAT experiment wiring: shared labelled batches and unlabelled batches, each arm's own term, the validation pick."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import zoo.experiments.virtual_adversarial_training as exp
from tests.experiments.budgets import quick_env, spec_budget, quick_run_metrics
from zoo import harness
from zoo.catalogue import get
from zoo.experiments.virtual_adversarial_training import EXPERIMENT, SemiSupervised, arm_table, eps_name
from zoo.harness import JobRecord, Table
from zoo.workloads.classification import UNLABELLED

ID = "virtual_adversarial_training"


def test_arm_table_matches_the_spec() -> None:
    cfg, _ = spec_budget(ID, quick=False)
    arms = arm_table(cfg)
    assert arms["supervised"] == (None, 0.0)
    assert {a: v for a, v in arms.items() if a.startswith("vat_eps")} == {f"vat_eps{eps_name(e)}": (e, 0.0) for e in cfg["eps_grid"]}
    assert {a: v for a, v in arms.items() if a.startswith("vat_ent")} == {f"vat_ent_eps{eps_name(e)}": (e, 1.0) for e in cfg["eps_grid"]}
    spec_arms = get(ID).spec.reproduction.arms
    assert set(arms) | {"vat", "vat_ent"} == set(spec_arms)
    assert cfg["labels_per_class"] == 10


def test_every_arm_sees_the_same_labelled_and_unlabelled_data_and_adds_its_own_term(monkeypatch: pytest.MonkeyPatch) -> None:
    cur: list[Any] = [None]
    lab: dict[Any, list[torch.Tensor]] = {}
    unl: dict[Any, list[torch.Tensor]] = {}
    lds_eps: dict[Any, list[float]] = {}
    ent: dict[Any, int] = {}
    tasks: dict[Any, Any] = {}
    real_lb, real_lds, real_ent, real_loss = SemiSupervised.labelled_batch, exp.vat.lds, exp.vat.conditional_entropy, SemiSupervised.loss
    real_job = EXPERIMENT.job

    def labelled_batch(self):
        idx = real_lb(self)
        lab[cur[0]].append(idx.clone())
        tasks[cur[0]] = self.task
        return idx

    def loss(self, model, batch):
        unl[cur[0]].append(batch.idx.clone())
        return real_loss(self, model, batch)

    def spy_lds(model, x, eps, **kw):
        lds_eps[cur[0]].append(float(eps))
        # the LDS term is taken on the harness's batch (labelled and unlabelled inputs)
        assert torch.equal(x, tasks[cur[0]].x_train[unl[cur[0]][-1]])
        return real_lds(model, x, eps, **kw)

    def spy_ent(logits):
        ent[cur[0]] += 1
        return real_ent(logits)

    def job(cfg, arm, seed, ctx):
        cur[0] = (arm, seed)
        lab[cur[0]], unl[cur[0]], lds_eps[cur[0]], ent[cur[0]] = [], [], [], 0
        return real_job(cfg, arm, seed, ctx)

    monkeypatch.setattr(SemiSupervised, "labelled_batch", labelled_batch)
    monkeypatch.setattr(SemiSupervised, "loss", loss)
    monkeypatch.setattr(exp.vat, "lds", spy_lds)
    monkeypatch.setattr(exp.vat, "conditional_entropy", spy_ent)
    monkeypatch.setattr(EXPERIMENT, "job", job)
    cfg, _ = spec_budget(ID, quick=True)
    harness.run(EXPERIMENT, cfg, [0, 1], quick_env(), workers=1)
    arms = arm_table(cfg)
    for seed in (0, 1):
        ref = ("supervised", seed)
        task = tasks[ref]
        labelled = set(task.labelled.nonzero().squeeze(1).tolist())
        assert len(labelled) == 10 * task.num_classes
        # the labelled batches: only labelled examples, each epoch of permutations covers them all
        seen = torch.cat(lab[ref]).tolist()
        assert set(seen) <= labelled and set(seen[: len(labelled)]) == labelled
        assert all(int(task.y_train[i]) != UNLABELLED for i in seen)
        for arm, (eps, h) in arms.items():
            key = (arm, seed)
            assert len(lab[key]) == len(lab[ref]) > 0
            assert all(torch.equal(a, b) for a, b in zip(lab[key], lab[ref], strict=True)), arm
            assert all(torch.equal(a, b) for a, b in zip(unl[key], unl[ref], strict=True)), arm
            steps = len(unl[key])
            assert lds_eps[key] == ([] if eps is None else [eps] * steps), arm
            assert ent[key] == (steps if h else 0), arm
        # the unlabelled batches are the whole training split, mostly unlabelled
        assert len(set(torch.cat(unl[ref]).tolist())) == task.n_train
    assert not torch.equal(lab[("supervised", 0)][0], lab[("supervised", 1)][0])


def test_derived_arms_take_the_best_validation_eps() -> None:
    cfg = {"eps_grid": [0.5, 1.5], "epochs": 1}
    val = {"supervised": 1.0, "vat_eps0p5": 2.0, "vat_eps1p5": 3.0, "vat_ent_eps0p5": 5.0, "vat_ent_eps1p5": 4.0}
    recs = [JobRecord(a, s, {"val_acc": v + s, "test_acc": 10 * v}, {}) for a, v in val.items() for s in (0, 1)]
    out: dict[str, dict[str, list[float]]] = {}
    exp._derive(cfg, Table([0, 1], recs), out)
    assert out["vat"]["eps_picked"] == [1.5, 1.5] and out["vat"]["test_acc"] == [30.0, 30.0]
    assert out["vat_ent"]["eps_picked"] == [0.5, 0.5] and out["vat_ent"]["test_acc"] == [50.0, 50.0]


def test_quick_run_produces_every_declared_metric(tmp_path) -> None:
    quick_run_metrics(ID, tmp_path, workers=1,
                      skip=lambda arm, metric: metric == "eps_picked" and arm not in ("vat", "vat_ent"))
