"""The AnyLoss experiment on the harness: each arm trains with its own loss, fair arms, claims' metrics produced."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch

import zoo.experiments.anyloss_confusion_metric_losses as exp
from tests.experiments.budgets import quick_env, spec_budget
from zoo import harness
from zoo.catalogue import get
from zoo.reproduce import main
from tests.experiments.armspy import JobSpy

ID = "anyloss_confusion_metric_losses"
EXPECTED = {"bce": "bce", "mse": "mse", "anyloss_f1": "anyloss"}


def test_binary_logit_is_the_softmax_probability_of_class_1() -> None:
    logits = torch.randn(7, 2, dtype=torch.float64)
    torch.testing.assert_close(torch.sigmoid(exp.binary_logit(logits)), logits.softmax(-1)[:, 1])
    y = torch.randint(0, 2, (7,))
    torch.testing.assert_close(exp._bce(logits, y), torch.nn.functional.cross_entropy(logits, y))


class _Spy(JobSpy):
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(monkeypatch, exp.EXPERIMENT)
        self.calls: dict[tuple[str, int], list[tuple[str, dict[str, Any]]]] = {}
        self.targets: dict[tuple[str, int], list[torch.Tensor]] = {}
        real = {"bce": exp._bce, "mse": exp._mse, "anyloss": exp.anyloss}

        def wrap(kind: str):
            def fn(*args: Any, **kw: Any) -> torch.Tensor:
                self.calls[self.current].append((kind, kw))
                if kind != "anyloss":
                    self.targets[self.current].append(args[1].clone())
                return real[kind](*args, **kw)
            return fn

        monkeypatch.setattr(exp, "_bce", wrap("bce"))
        monkeypatch.setattr(exp, "_mse", wrap("mse"))
        monkeypatch.setattr(exp, "anyloss", wrap("anyloss"))

    def start_job(self, key: tuple[str, int]) -> None:
        self.calls[key], self.targets[key] = [], []


def test_each_arm_trains_with_its_loss_from_the_same_init_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _Spy(monkeypatch)
    cfg, _ = spec_budget(ID)
    cfg = {**cfg, "settings": {"dig8": cfg["settings"]["dig8"]}}
    harness.run(exp.EXPERIMENT, cfg, [0, 1], quick_env(), workers=1)
    for arm, kind in EXPECTED.items():
        for seed in (0, 1):
            calls = spy.calls[(f"{arm}__dig8", seed)]
            assert calls and all(k == kind for k, _ in calls), (arm, seed)
            if kind == "anyloss":
                assert all(kw["metric"] == "f1" and kw["L"] == 73.0 for _, kw in calls)
    for seed in (0, 1):
        ref = spy.init[("bce__dig8", seed)]
        for arm in EXPECTED:
            for k, v in spy.init[(f"{arm}__dig8", seed)].items():
                assert torch.equal(v, ref[k]), (arm, k)
        a, b = spy.targets[("bce__dig8", seed)], spy.targets[("mse__dig8", seed)]
        assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
        assert int(torch.cat(a).sum()) > 0  # the positives reach training
    assert not torch.equal(spy.init[("bce__dig8", 0)]["0.weight"], spy.init[("bce__dig8", 1)]["0.weight"])


def test_quick_run_produces_every_claim_metric(tmp_path) -> None:
    spec = get(ID).spec
    assert main([ID, "--quick", "--no-progress", "--workers", "1", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())["arms"]
    assert set(metrics) == set(spec.reproduction.arms) == set(EXPECTED)
    for c in spec.claims:
        for ref in c.refs():
            arm, m = ref.split(".")
            assert all(math.isfinite(v) for v in metrics[arm][m]), ref
    for arm in EXPECTED:
        for m in spec.reproduction.metrics:
            assert len(metrics[arm][m]) == 1
