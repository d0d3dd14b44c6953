"""The APL experiment on the harness: each arm's loss (with its hyper-parameters) reaches training, fair arms.

The spy replaces the loss functions the arm table resolves to (looked up at call time in
``zoo.experiments._noisy_losses``), so an arm trained with the wrong loss, the wrong alpha/beta, or
from a different initialisation or batch order fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import zoo.experiments._noisy_losses as nl
from zoo import harness
from zoo.catalogue import get
from zoo.experiments.normalized_active_passive_losses import EXPERIMENT
from tests.experiments.budgets import quick_env, spec_budget, quick_run_metrics
from tests.experiments.armspy import JobSpy

ID = "normalized_active_passive_losses"
# What each arm is, independently of the config: the claims are about these losses.
EXPECTED = {
    "ce": ("cross_entropy", {}),
    "gce": ("generalized_cross_entropy", {"q": 0.7}),
    "sce": ("symmetric_cross_entropy", {"alpha": 0.01, "beta": 1.0, "log_zero": -4.0}),
    "nce": ("normalized_cross_entropy", {}),
    "nce_rce": ("active_passive_loss", {"active": "nce", "passive": "rce", "alpha": 1.0, "beta": 10.0, "log_zero": -4.0}),
    "nce_mae": ("active_passive_loss", {"active": "nce", "passive": "mae", "alpha": 1.0, "beta": 10.0}),
    "nfl_rce": ("active_passive_loss", {"active": "nfl", "passive": "rce", "alpha": 1.0, "beta": 10.0, "gamma": 0.5,
                                        "log_zero": -4.0}),
}


class LossSpy(JobSpy):
    """Records, per (job arm, seed), which loss function and keyword arguments every step used."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, experiment: Any, scale: float = 1.0) -> None:
        super().__init__(monkeypatch, experiment)
        self.calls: dict[tuple[str, int], list[tuple[str, dict[str, Any]]]] = {}
        self.targets: dict[tuple[str, int], list[torch.Tensor]] = {}
        names = {fn for fn, _ in nl.LOSS_NAMES.values()}
        for name in names:
            real = getattr(nl, name)

            def spy(logits: torch.Tensor, y: torch.Tensor, *a: Any, _real=real, _name=name, **kw: Any) -> torch.Tensor:
                self.calls[self.current].append((_name, dict(kw)))
                self.targets[self.current].append(y.clone())
                return scale * _real(logits, y, *a, **kw)

            monkeypatch.setattr(nl, name, spy)

    def start_job(self, key: tuple[str, int]) -> None:
        self.calls[key], self.targets[key] = [], []


def _small_cfg(**over: Any) -> dict[str, Any]:
    cfg, _ = spec_budget(ID, quick=False)
    return {**cfg, "epochs": 1, "settings": {"sym80": cfg["settings"]["sym80"]}, **over}


def test_arm_table_is_the_papers() -> None:
    cfg, _ = spec_budget(ID, quick=False)
    table = {a: (nl.LOSS_NAMES[n][0], {**nl.LOSS_NAMES[n][1], **kw}) for a, (n, kw) in nl.arm_table(cfg).items()}
    assert table == EXPECTED
    assert list(get(ID).spec.reproduction.arms) == list(EXPECTED)
    assert {s: v["noise"] for s, v in cfg["settings"].items()} == {
        f"sym{r}": {"kind": "symmetric", "rate": r / 100} for r in (40, 60, 80)}


def test_each_arm_trains_with_its_loss_from_the_same_init_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = LossSpy(monkeypatch, EXPERIMENT)
    cfg = _small_cfg()
    seeds = [0, 1]
    harness.run(EXPERIMENT, cfg, seeds, quick_env(), workers=1)
    for arm, (fn, kw) in EXPECTED.items():
        for seed in seeds:
            calls = spy.calls[(f"{arm}__sym80", seed)]
            assert calls and all(c == (fn, kw) for c in calls), (arm, calls[:1])
    for seed in seeds:
        ref = ("ce__sym80", seed)
        for arm in EXPECTED:
            key = (f"{arm}__sym80", seed)
            for k, v in spy.init[key].items():
                assert torch.equal(v, spy.init[ref][k]), (arm, k)
            assert all(torch.equal(a, b) for a, b in zip(spy.targets[key], spy.targets[ref], strict=True))
        finals = {a: torch.cat([p.detach().flatten() for p in spy.models[(f"{a}__sym80", seed)].parameters()])
                  for a in EXPECTED}
        arms = list(EXPECTED)
        for i, a in enumerate(arms):
            for b in arms[i + 1:]:
                assert not torch.allclose(finals[a], finals[b]), (a, b)
    assert not torch.equal(spy.init[("ce__sym80", 0)]["0.weight"], spy.init[("ce__sym80", 1)]["0.weight"])


def test_the_loss_the_experiment_computes_is_the_one_it_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = LossSpy(monkeypatch, EXPERIMENT, scale=0.0)
    harness.run(EXPERIMENT, _small_cfg(), [0], quick_env(), workers=1)
    for arm in EXPECTED:
        key = (f"{arm}__sym80", 0)
        assert spy.calls[key]
        for k, v in spy.models[key].state_dict().items():
            assert torch.equal(v, spy.init[key][k]), (arm, k)


def test_headline_metrics_are_the_80_percent_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    res = harness.run(EXPERIMENT, _small_cfg(), [0], quick_env(), workers=1)
    for arm in EXPECTED:
        assert res.metrics[arm]["test_acc"] == res.metrics[arm]["sym80_test_acc"]
        assert res.metrics[arm]["test_ece"] == res.metrics[arm]["sym80_test_ece"]


def test_quick_run_produces_every_declared_metric(tmp_path) -> None:
    quick_run_metrics(ID, tmp_path)
