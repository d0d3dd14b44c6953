"""The sparsemax experiment on the harness: each arm trains with its own loss, fair arms, own-map metrics."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import zoo.experiments.sparsemax as exp
from tests.experiments.armspy import ArmSpy
from tests.experiments.budgets import quick_env, spec_budget, quick_run_metrics
from zoo import harness
from zoo.catalogue import get
from zoo.experiments.sparsemax import EXPERIMENT, _methods

ID = "sparsemax"
EXPECTED = {"ce": "_ce", "sparsemax": "_sparsemax"}


def _cfg(**over: Any) -> dict[str, Any]:
    cfg, _ = spec_budget(ID, quick=False)
    return {**cfg, "epochs": 1, "n_train": 300, **over}


def test_arms_follow_the_spec() -> None:
    spec = get(ID).spec
    assert spec.family.value == "architecture"
    cfg, _ = spec_budget(ID, quick=False)
    assert list(_methods(cfg)) == list(spec.reproduction.arms) == list(EXPECTED)


def test_each_arm_trains_with_its_loss_from_the_same_init_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = ArmSpy(monkeypatch, exp, EXPERIMENT, list(EXPECTED.values()))
    cfg = _cfg()
    seeds = [0, 1]
    harness.run(EXPERIMENT, cfg, seeds, quick_env(), workers=1)
    spy.check(_methods, cfg, seeds, EXPECTED, {"digits": 300, "mnist1d": 300})


def test_the_loss_computed_is_the_loss_trained(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = ArmSpy(monkeypatch, exp, EXPERIMENT, list(EXPECTED.values()), scale=0.0)
    cfg = _cfg()
    cfg["optimizer"] = {**cfg["optimizer"], "weight_decay": 0.0}
    harness.run(EXPERIMENT, cfg, [0], quick_env(), workers=1)
    spy.assert_models_unmoved()


def test_own_map_metrics_by_hand() -> None:
    """Logits (1, 0.5, -1) -> sparsemax (3/4, 1/4, 0): support 2; true class 2 gets exactly 0."""
    x_test = torch.tensor([[1.0, 0.5, -1.0], [1.0, 0.5, -1.0], [3.0, 0.0, 0.0]])
    y_test = torch.tensor([0, 2, 0])
    task = type("T", (), {"x_test": x_test, "y_test": y_test})()
    ms = _methods({})
    sm = ms["sparsemax"].make(task, {}, torch.nn.Identity())
    m = sm.metrics(torch.nn.Identity())
    assert m["test_support"] == pytest.approx((2 + 2 + 1) / 3)
    assert m["test_zero_true"] == pytest.approx(100.0 / 3)
    # ECE of the sparsemax probabilities: confidences 3/4, 3/4, 1 with correctness 1, 0, 1
    assert m["test_own_ece"] == pytest.approx(100.0 * ((0.75 - 0.5) * 2 + 0.0) / 3)
    ce = ms["ce"].make(task, {}, torch.nn.Identity()).metrics(torch.nn.Identity())
    assert ce["test_support"] == 3.0 and ce["test_zero_true"] == 0.0


def test_quick_run_produces_every_claimed_metric(tmp_path) -> None:
    quick_run_metrics(ID, tmp_path, workers=1)


def test_sparsemax_arm_gradient_is_sparsemax_minus_onehot() -> None:
    """The arm's loss drives the logits by (sparsemax(z) - e_y) / N, the paper's gradient (Eq. 19)."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (6,), generator=g)
    task = type("T", (), {})()
    loss = _methods({})["sparsemax"].make(task, {}, torch.nn.Identity()).loss_fn(z, y)
    (grad,) = torch.autograd.grad(loss, z)
    want = (exp.sparsemax(z.detach(), -1) - torch.nn.functional.one_hot(y, 5).double()) / 6
    torch.testing.assert_close(grad, want)
