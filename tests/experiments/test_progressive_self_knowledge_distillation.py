"""The PS-KD experiment on the harness: each arm's target reaches training, the teacher is last epoch's prediction.

Spies on the losses the experiment calls: an experiment whose PS-KD arm used the current (not the
previous epoch's) prediction, another example's memory, a wrong ramp, or whose arms started from
different weights or batches fails here.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import zoo.experiments.progressive_self_knowledge_distillation as exp
from zoo import harness
from zoo.catalogue import get
from zoo.experiments.progressive_self_knowledge_distillation import EXPERIMENT
from tests.experiments.armspy import JobSpy
from tests.experiments.budgets import quick_env, spec_budget, quick_run_metrics

ID = "progressive_self_knowledge_distillation"
ARMS = ["ce", "ls", "pskd"]


def _cfg(**over: Any) -> dict[str, Any]:
    return {**spec_budget(ID, quick=False)[0], **over}


class _Spy(JobSpy):
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(monkeypatch, EXPERIMENT)
        self.calls: dict[tuple[str, int], list[dict[str, Any]]] = {}
        real_ce, real_pskd = exp._ce, exp.ps_kd_cross_entropy

        def ce(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
            self.calls[self.current].append({"kind": "ce", "ls": label_smoothing, "y": y.clone()})
            return real_ce(logits, y, label_smoothing)

        def pskd(logits: torch.Tensor, y: torch.Tensor, teacher: torch.Tensor, alpha: float, **kw: Any) -> torch.Tensor:
            self.calls[self.current].append({"kind": "pskd", "alpha": alpha, "y": y.clone(), "teacher": teacher.clone(),
                                             "probs": logits.detach().softmax(-1).clone()})
            return real_pskd(logits, y, teacher, alpha, **kw)

        monkeypatch.setattr(exp, "_ce", ce)
        monkeypatch.setattr(exp, "ps_kd_cross_entropy", pskd)

    def start_job(self, key: tuple[str, int]) -> None:
        self.calls[key] = []


def test_arms_train_with_their_targets_from_shared_init_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _Spy(monkeypatch)
    cfg = _cfg(epochs=3)
    harness.run(EXPERIMENT, cfg, [0], quick_env(), workers=1)
    n_train = 3200  # mnist1d's 4,000 training examples less the 20% validation split
    steps = math.ceil(n_train / cfg["batch_size"])
    ce, ls, ps = (spy.calls[(a, 0)] for a in ARMS)
    assert [c["kind"] for c in ce] == ["ce"] * 3 * steps and {c["ls"] for c in ce} == {0.0}
    assert [c["kind"] for c in ls] == ["ce"] * 3 * steps and {c["ls"] for c in ls} == {0.1}
    assert [c["kind"] for c in ps] == ["pskd"] * 3 * steps
    # the ramp alpha_T t / T per epoch
    assert [c["alpha"] for c in ps[::steps]] == pytest.approx([0.8 / 3, 1.6 / 3, 0.8])
    for a in ARMS:  # shared initial weights and batches
        assert all(torch.equal(v, spy.init[("ce", 0)][k]) for k, v in spy.init[(a, 0)].items())
        assert all(torch.equal(p["y"], q["y"]) for p, q in zip(spy.calls[(a, 0)], ce, strict=True))


def test_pskd_teacher_is_the_examples_previous_epoch_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Epoch 1 trains on the one-hot labels; epoch e's teacher of x is x's softmax at its visit in epoch e - 1."""
    seen: list[tuple[torch.Tensor, int]] = []
    real = exp.PSKDObjective.loss

    def loss(self: Any, model: Any, batch: Any) -> torch.Tensor:
        seen.append((batch.idx.clone(), batch.epoch))
        return real(self, model, batch)

    monkeypatch.setattr(exp.PSKDObjective, "loss", loss)
    spy = _Spy(monkeypatch)
    harness.run(EXPERIMENT, _cfg(epochs=3), [1], quick_env(), workers=1)
    calls = spy.calls[("pskd", 1)]
    last: dict[int, torch.Tensor] = {}
    for (idx, epoch), c in zip(seen, calls, strict=True):
        if epoch == 1:
            torch.testing.assert_close(c["teacher"], torch.nn.functional.one_hot(c["y"], 10).float())
        else:
            want = torch.stack([last[int(i)] for i in idx])
            torch.testing.assert_close(c["teacher"], want)
        for i, p in zip(idx.tolist(), c["probs"]):
            last[i] = p


def test_quick_run_produces_every_claimed_metric(tmp_path: Any) -> None:
    # every declared metric, the ECE ratio to CE only on the arms compared with it
    metrics = quick_run_metrics(ID, tmp_path, workers=1, skip=lambda arm, m: m == "ece_rel_ce" and arm not in ("ls", "pskd"))
    spec = get(ID).spec
    for arm in spec.reproduction.arms:
        assert {"test_acc", "test_ece"} <= set(metrics[arm])
