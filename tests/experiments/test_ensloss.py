"""The EnsLoss experiment on the harness: each arm trains with its own loss, fair arms, the gap metric, claims' metrics."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch

import zoo.experiments.ensloss as exp
from tests.experiments.budgets import quick_env, spec_budget
from zoo import harness
from zoo.catalogue import get
from zoo.harness import JobRecord, Table
from zoo.reproduce import main
from tests.experiments.armspy import JobSpy

ID = "ensloss"
EXPECTED = {"logistic": "logistic", "hinge": "hinge", "focal": "focal", "ensloss": "ensloss"}


def test_margin_losses_by_hand() -> None:
    logits = torch.tensor([[0.0, 2.0], [1.0, 0.5]], dtype=torch.float64)  # z = 2, -0.5
    t = torch.tensor([1, 1])
    torch.testing.assert_close(exp._hinge(logits, t), torch.tensor((0.0 + 1.5) / 2, dtype=torch.float64))
    torch.testing.assert_close(exp._logistic(logits, t), torch.nn.functional.cross_entropy(logits, t))
    p = torch.sigmoid(torch.tensor([2.0, -0.5], dtype=torch.float64))
    torch.testing.assert_close(exp._focal(logits, t), ((1 - p) ** 2 * -p.log()).mean())


class _Spy(JobSpy):
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(monkeypatch, exp.EXPERIMENT)
        self.calls: dict[tuple[str, int], list[str]] = {}
        self.targets: dict[tuple[str, int], list[torch.Tensor]] = {}
        real = {"logistic": exp._logistic, "hinge": exp._hinge, "focal": exp._focal, "ensloss": exp.ensloss}

        def wrap(kind: str):
            def fn(*args: Any, **kw: Any) -> torch.Tensor:
                self.calls[self.current].append(kind)
                self.targets[self.current].append(args[1].clone())
                return real[kind](*args, **kw)
            return fn

        for kind in ("logistic", "hinge", "focal"):
            monkeypatch.setattr(exp, f"_{kind}", wrap(kind))
        monkeypatch.setattr(exp, "ensloss", wrap("ensloss"))

    def start_job(self, key: tuple[str, int]) -> None:
        self.calls[key], self.targets[key] = [], []


def test_each_arm_trains_with_its_loss_from_the_same_init_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _Spy(monkeypatch)
    cfg, _ = spec_budget(ID)
    cfg = {**cfg, "settings": {"even": cfg["settings"]["even"]}}
    harness.run(exp.EXPERIMENT, cfg, [0, 1], quick_env(), workers=1)
    for arm, kind in EXPECTED.items():
        for seed in (0, 1):
            calls = spy.calls[(f"{arm}__even", seed)]
            assert calls and set(calls) == {kind}, (arm, seed, set(calls))
    for seed in (0, 1):
        ref = ("logistic__even", seed)
        for arm in EXPECTED:
            a = (f"{arm}__even", seed)
            for k, v in spy.init[a].items():
                assert torch.equal(v, spy.init[ref][k]), (arm, k)
            # the EnsLoss arm sees the score z = z_1 - z_0 and the batch labels, in the same order
            tgt = spy.targets[a]
            assert len(tgt) == len(spy.targets[ref]) and all(torch.equal(x, y) for x, y in zip(tgt, spy.targets[ref]))
    assert not torch.equal(spy.init[("logistic__even", 0)]["0.weight"], spy.init[("logistic__even", 1)]["0.weight"])


def test_gap_is_train_minus_test() -> None:
    cfg = {"arms": {"logistic": {"loss": "logistic"}, "ensloss": {"loss": "ensloss"}}, "settings": {"a": {}}}
    recs = [JobRecord(f"{m}__a", s, {"train_acc": 100.0 - s, "test_acc": 90.0 + (m == "ensloss")}, {})
            for s in (0, 1) for m in ("logistic", "ensloss")]
    out = exp.EXPERIMENT.derive(cfg, Table([0, 1], recs))
    assert out["logistic"]["a_gap"] == [10.0, 9.0]
    assert out["ensloss"]["a_gap"] == [9.0, 8.0]


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
            assert len(metrics[arm][m]) == 1, (arm, m)
