"""The Z-loss experiment on the harness: each arm trains with its own loss, fair arms, claims' metrics."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import zoo.experiments.z_loss_spherical_classification as exp
from tests.experiments.armspy import ArmSpy
from tests.experiments.budgets import quick_env, spec_budget, quick_run_metrics
from zoo import harness
from zoo.catalogue import get
from zoo.experiments.z_loss_spherical_classification import EXPERIMENT, _methods
from zoo.losses.spherical_softmax import log_spherical_softmax_loss
from zoo.losses.z_loss import z_loss

ID = "z_loss_spherical_classification"
EXPECTED = {"ce": "_ce", "mse": "_mse", "log_taylor": "_taylor", "log_spherical": "_spherical", "zloss": "_zloss"}


def _cfg(**over: Any) -> dict[str, Any]:
    cfg, _ = spec_budget(ID, quick=False)
    return {**cfg, "epochs": 1, "n_train": 200, **over}


def test_arms_follow_the_spec() -> None:
    spec = get(ID).spec
    cfg, _ = spec_budget(ID, quick=False)
    assert list(_methods(cfg)) == list(spec.reproduction.arms) == list(EXPECTED)
    assert cfg["zloss"] == {"a": 1.0, "b": 3.0} and cfg["spherical_eps"] == 0.01
    assert cfg["settings"]["synth100"]["dataset"]["classes"] == 100


def test_each_arm_trains_with_its_loss_from_the_same_init_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = ArmSpy(monkeypatch, exp, EXPERIMENT, list(EXPECTED.values()))
    cfg = _cfg()
    seeds = [0, 1]
    harness.run(EXPERIMENT, cfg, seeds, quick_env(), workers=1)
    spy.check(_methods, cfg, seeds, EXPECTED, {"digits": 200, "synth100": 200})


def test_parametrised_arms_use_the_configured_values() -> None:
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(6, 5, generator=g), torch.randint(0, 5, (6,), generator=g)
    ms = _methods({"zloss": {"a": 0.3, "b": 1.7}, "spherical_eps": 0.5})
    task = type("T", (), {})()
    got_z = ms["zloss"].make(task, {}, torch.nn.Identity()).loss_fn(z, y)
    torch.testing.assert_close(got_z, z_loss(z, y, a=0.3, b=1.7))
    assert not torch.allclose(got_z, z_loss(z, y))
    got_s = ms["log_spherical"].make(task, {}, torch.nn.Identity()).loss_fn(z, y)
    torch.testing.assert_close(got_s, log_spherical_softmax_loss(z, y, eps=0.5))


def test_top5_metric_counts_hits_in_the_five_largest_logits() -> None:
    x_test = torch.eye(7)
    y_test = torch.tensor([0, 1, 2, 3, 4, 5, 6])
    task = type("T", (), {"x_test": x_test, "y_test": y_test})()
    # a "model" whose logit for class j is -j, plus a bump at the input's class for the first 3 rows
    w = -torch.arange(7.0)[None, :].expand(7, 7).clone()
    model = lambda x: w + 10.0 * x * (torch.arange(7) < 3).float()[:, None]  # noqa: E731
    obj = exp._TopK(task, {}, torch.nn.Identity(), lambda z, y: z.sum())
    # rows 0-2: the bump puts the class first; rows 3, 4: class in the top 5 of -j; rows 5, 6: not
    assert obj.metrics(model) == {"test_top5": pytest.approx(100.0 * 5 / 7)}


def test_the_loss_computed_is_the_loss_trained(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = ArmSpy(monkeypatch, exp, EXPERIMENT, list(EXPECTED.values()), scale=0.0)
    cfg = _cfg()
    cfg["optimizer"] = {**cfg["optimizer"], "weight_decay": 0.0}
    harness.run(EXPERIMENT, cfg, [0], quick_env(), workers=1)
    spy.assert_models_unmoved()


def test_quick_run_produces_every_claimed_metric(tmp_path) -> None:
    quick_run_metrics(ID, tmp_path, workers=1)
