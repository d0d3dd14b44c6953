"""The sparse-softmax experiment on the harness: arms' losses (and the warm-up switch), fair arms, timing metrics."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

import zoo.experiments.sparse_softmax as exp
from tests.experiments.armspy import ArmSpy
from tests.experiments.budgets import quick_env, spec_budget, quick_run_metrics
from zoo import harness
from zoo.catalogue import get
from zoo.experiments.sparse_softmax import EXPERIMENT, _methods, arm_ks, time_fwd_bwd
from zoo.losses.sparse_softmax import sparse_softmax_cross_entropy

ID = "sparse_softmax"


def _ft(steps: int) -> list[str]:
    # CE while progress = step / total < 0.5, then the sparse loss
    return ["_ce" if s / steps < 0.5 else "_sparse" for s in range(steps)]


EXPECTED = {"ce": "_ce", "sparse_k10": "_sparse", "sparse_k10_ft": _ft}


def _cfg(**over: Any) -> dict[str, Any]:
    cfg, _ = spec_budget(ID, quick=False)
    return {**cfg, "epochs": 2, "n_train": 256, "timing_reps": 1, "timing_blocks": 1, **over}


def test_arm_table_follows_the_spec() -> None:
    spec = get(ID).spec
    cfg, _ = spec_budget(ID, quick=False)
    assert arm_ks(cfg) == {"ce": (0, 0.0), "sparse_k10": (10, 0.0), "sparse_k10_ft": (10, 0.5)}
    assert list(_methods(cfg)) == list(spec.reproduction.arms) == list(EXPECTED)
    assert cfg["dataset"]["classes"] == 500


def test_each_arm_trains_with_its_loss_from_the_same_init_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    k_seen: list[int] = []
    real_sparse = exp._sparse

    def sparse(z: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
        k_seen.append(k)
        return real_sparse(z, y, k)

    monkeypatch.setattr(exp, "_sparse", sparse)
    spy = ArmSpy(monkeypatch, exp, EXPERIMENT, ["_ce", "_sparse"])
    cfg = _cfg()
    seeds = [0, 1]
    harness.run(EXPERIMENT, cfg, seeds, quick_env(), workers=1)
    spy.check(_methods, cfg, seeds, EXPECTED, {None: 256})
    assert k_seen and set(k_seen) == {10}


def test_the_loss_computed_is_the_loss_trained(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = ArmSpy(monkeypatch, exp, EXPERIMENT, ["_ce", "_sparse"], scale=0.0)
    cfg = _cfg(epochs=1)
    cfg["optimizer"] = {**cfg["optimizer"], "weight_decay": 0.0}
    harness.run(EXPERIMENT, cfg, [0], quick_env(), workers=1)
    spy.assert_models_unmoved()


def test_timing_measures_each_function_and_is_ordered() -> None:
    """A loss that does 20x the work of another is timed as slower; the ratio metric is mine / ce."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 500, generator=g), torch.randint(0, 500, (64,), generator=g)
    cheap = lambda z, t: F.cross_entropy(z, t)  # noqa: E731
    costly = lambda z, t: sum(F.cross_entropy(z * (1 + i / 100), t) for i in range(20))  # noqa: E731
    t_cheap, t_costly = time_fwd_bwd([cheap, costly], x, y, reps=5, blocks=3)
    assert 0 < t_cheap < t_costly
    task = type("T", (), {"num_classes": 500, "x_test": x})()
    obj = exp._Timed(task, {"timing_reps": 2, "timing_blocks": 1}, torch.nn.Identity(), 10, 0.0)
    m = obj.metrics(torch.nn.Identity())
    assert m["loss_time_ratio"] == pytest.approx(m["loss_us"] / m["ce_loss_us"])
    assert obj.loss_fn(x, y).item() == pytest.approx(sparse_softmax_cross_entropy(x, y, k=10).item())
    # the training loss the arms call is the sparse loss at their k
    assert exp._sparse(x, y, 10).item() == pytest.approx(sparse_softmax_cross_entropy(x, y, k=10).item())
    assert exp._sparse(x, y, 10).item() != pytest.approx(sparse_softmax_cross_entropy(x, y, k=5).item())
    # what is timed is the arm's own loss
    assert obj.timed(x, y).item() == pytest.approx(sparse_softmax_cross_entropy(x, y, k=10).item())
    assert obj.timed(x, y).item() != pytest.approx(F.cross_entropy(x, y).item())
    ce_obj = exp._Timed(task, {}, torch.nn.Identity(), 0, 0.0)
    assert ce_obj.timed(x, y).item() == pytest.approx(F.cross_entropy(x, y).item())


def test_quick_run_produces_every_claimed_metric(tmp_path) -> None:
    quick_run_metrics(ID, tmp_path, workers=1)
