"""The squentropy experiment on the harness: each arm trains with its own loss, fair arms, claims' metrics."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import zoo.experiments.squentropy_loss as exp
from tests.experiments.armspy import ArmSpy
from tests.experiments.budgets import quick_env, spec_budget, quick_run_metrics
from zoo import harness
from zoo.catalogue import get
from zoo.experiments.squentropy_loss import EXPERIMENT, _methods
from zoo.losses.squentropy import rescaled_square_loss

ID = "squentropy_loss"
EXPECTED = {"ce": "_ce", "square": "_square", "squentropy": "_squentropy"}


def _cfg(**over: Any) -> dict[str, Any]:
    cfg, _ = spec_budget(ID, quick=False)
    return {**cfg, "epochs": 1, "n_train": 300, **over}


def test_arms_and_square_rescaling_follow_the_spec() -> None:
    spec = get(ID).spec
    cfg, _ = spec_budget(ID, quick=False)
    assert list(_methods(cfg)) == list(spec.reproduction.arms) == list(EXPECTED)
    assert cfg["square"] == {"k": 1.0, "M": 1.0}  # Hui & Belkin's few-class setting
    # every arm trains with the same (cross-entropy's) optimizer: no per-arm override exists
    assert "optimizer" not in str(cfg["settings"])


def test_each_arm_trains_with_its_loss_from_the_same_init_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = ArmSpy(monkeypatch, exp, EXPERIMENT, list(EXPECTED.values()))
    cfg = _cfg()
    seeds = [0, 1]
    harness.run(EXPERIMENT, cfg, seeds, quick_env(), workers=1)
    spy.check(_methods, cfg, seeds, EXPECTED, {"digits": 300, "mnist1d": 300})


def test_square_arm_uses_the_configured_k_and_M() -> None:
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(4, 3, generator=g), torch.tensor([0, 1, 2, 0])
    got = _methods({"square": {"k": 15.0, "M": 30.0}})["square"].loss(z, y)
    torch.testing.assert_close(got, rescaled_square_loss(z, y, k=15.0, M=30.0))
    assert not torch.allclose(got, rescaled_square_loss(z, y))


def test_the_loss_computed_is_the_loss_trained(monkeypatch: pytest.MonkeyPatch) -> None:
    """With each spied loss scaled to 0 (and no weight decay) no model moves."""
    spy = ArmSpy(monkeypatch, exp, EXPERIMENT, list(EXPECTED.values()), scale=0.0)
    cfg = _cfg()
    cfg["optimizer"] = {**cfg["optimizer"], "weight_decay": 0.0}
    harness.run(EXPERIMENT, cfg, [0], quick_env(), workers=1)
    spy.assert_models_unmoved()


def test_quick_run_produces_every_claimed_metric(tmp_path) -> None:
    quick_run_metrics(ID, tmp_path, workers=1)
