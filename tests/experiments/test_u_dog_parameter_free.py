"""Wiring tests for zoo.experiments.u_dog_parameter_free: they fail when the experiment is mis-wired.

* U-DoG arms step :class:`zoo.optim.u_dog.UDoG`, DoG arms :class:`~zoo.optim.dog.DoG` (averaged:
  through :class:`PolyAveraged`), the tuned arms SGD at the lstsq learning rate of the record;
* equal gradient evaluations: ``udog`` spends what ``dog`` spends (half its epochs, two
  evaluations per step), ``udog_2x`` twice that; the full-batch arms take one step per epoch
  over every training row for ``fb_epochs`` gradient evaluations;
* the plot's x axis is gradient evaluations, aligned across arms.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from zoo.catalogue import get, repo_root
from zoo.experiments import _optbench
from zoo.experiments import u_dog_parameter_free as exp
from zoo.harness import Env, JobContext, JobRecord, Table
from zoo.optim.dog import DoG
from zoo.optim.u_dog import UDoG


def _cfg(**over: Any) -> dict[str, Any]:
    r = get("u_dog_parameter_free").spec.reproduction
    assert r is not None
    return {**r.config, **r.quick.config, **over}


@pytest.fixture
def tuned_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    p = tmp_path / "tuned.json"
    p.write_text(json.dumps({"baselines": {"lstsq": {"sgdm_cosine": {"lr": 0.03}, "sgdm": {"lr": 0.01}}}}))
    monkeypatch.setattr(_optbench, "TUNED_FILE", str(p))
    return p


def _jobs(cfg: dict[str, Any], arms: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], dict[str, list[type]]]:
    """Run ``arms`` on seed 0; record which optimizer classes each stepped."""
    env = Env("cpu", repo_root() / "data", quick=True)
    ctx = JobContext(env, exp.EXPERIMENT.setup(cfg, env), None, None)
    stepped: dict[str, list[type]] = {}
    current: list[str] = []
    for cls in (UDoG, DoG, torch.optim.SGD):
        orig = cls.step

        def spy(self: Any, *a: Any, _orig: Any = orig, _cls: type = cls, **k: Any) -> Any:
            stepped.setdefault(current[0], [])
            if _cls not in stepped[current[0]]:
                stepped[current[0]].append(_cls)
            return _orig(self, *a, **k)
        monkeypatch.setattr(cls, "step", spy)
    outs = {}
    for arm in arms:
        current[:] = [arm]
        torch.manual_seed(0)
        outs[arm] = exp.EXPERIMENT.job(cfg, f"{arm}__lstsq", 0, ctx)
    return outs, stepped


def test_arms_step_their_optimizers_at_equal_gradient_evaluations(tuned_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(epochs={"lstsq": 4}, fb_epochs=6)
    arms = ["udog", "udog_2x", "dog", "dog_avg", "sgdm_tuned", "sgd_tuned", "udog_fb", "dog_fb", "dog_avg_fb"]
    outs, stepped = _jobs(cfg, arms, monkeypatch)
    for a in ("udog", "udog_2x", "udog_fb"):
        assert stepped[a] == [UDoG], a
    for a in ("dog", "dog_avg", "dog_fb", "dog_avg_fb"):
        assert stepped[a] == [DoG], a
    for a in ("sgdm_tuned", "sgd_tuned"):
        assert stepped[a] == [torch.optim.SGD], a
    ge = {a: outs[a].metrics["grad_evals"] for a in arms}
    n_batches = -(-240 // 32)  # quick: 300 rows, 20% carved off for validation
    assert ge["dog"] == 4 * n_batches and ge["udog"] == ge["dog"] and ge["udog_2x"] == 2 * ge["dog"]
    assert ge["dog_fb"] == 6 and ge["udog_fb"] == 6 and ge["dog_avg_fb"] == 6
    assert len(outs["udog"].series["subopt"]) == 2 and len(outs["dog"].series["subopt"]) == 4
    assert outs["sgdm_tuned"].metrics["lr"] == 0.03 and outs["sgd_tuned"].metrics["lr"] == 0.01
    assert outs["dog"].series["train_loss"] == outs["dog_avg"].series["train_loss"]
    assert outs["dog"].metrics["subopt"] != outs["dog_avg"].metrics["subopt"]


def test_tuned_arms_build_the_recorded_baselines(tuned_file: Path) -> None:
    ms = exp._methods(_cfg())
    assert ms["sgdm_tuned"].tuned_as == "sgdm_cosine" and ms["sgd_tuned"].tuned_as == "sgdm"
    p = [torch.nn.Parameter(torch.zeros(2))]
    opt, sched = ms["sgdm_tuned"].build(p, 10, 0.03, _cfg(), None)
    assert type(opt) is torch.optim.SGD and opt.defaults["momentum"] == 0.9 and sched is not None
    opt, sched = ms["sgd_tuned"].build(p, 10, 0.01, _cfg(), None)
    assert sched is None


def test_curves_put_every_arm_on_gradient_evaluations() -> None:
    cfg = _cfg()
    recs = []
    for s in (0, 1):
        for a, n, per in (("udog", 2, 50), ("dog", 4, 50), ("dog_avg", 4, 50), ("sgdm_tuned", 4, 50), ("sgd_tuned", 4, 50),
                          ("udog_fb", 3, 1), ("dog_fb", 6, 1), ("dog_avg_fb", 6, 1)):
            recs.append(JobRecord(f"{a}__lstsq", s, {"grad_evals": float(n * per * (2 if a.startswith("udog") else 1))},
                                  {"subopt": [float(i) for i in range(n)]}))
    curves = exp._curves(cfg, Table([0, 1], recs))
    noisy, fb = curves
    assert noisy.x == [100.0, 200.0] and noisy.series["udog"] == [0.0, 1.0] and noisy.series["dog"] == [1.0, 3.0]
    assert fb.x == [2.0, 4.0, 6.0] and fb.series["udog_fb"] == [0.0, 1.0, 2.0] and fb.series["dog_fb"] == [1.0, 3.0, 5.0]


def test_claims_read_produced_arms() -> None:
    spec = get("u_dog_parameter_free").spec
    methods = exp._methods(spec.reproduction.config)
    for c in spec.claims:
        for ref in (c.condition.metric, c.condition.minus):
            if ref is not None:
                assert ref.split(".")[0] in methods and ref.split(".")[0] in spec.reproduction.arms
