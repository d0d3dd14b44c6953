"""The PolyLoss experiment on the harness: each arm's loss reaches training, fair arms, determinism.

The wiring tests spy on the loss function the experiment calls, so an experiment that trained every
arm with plain cross-entropy, flipped an epsilon, or gave arms different initial weights or batch
orders fails here, whatever its accuracy.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
import torch

import zoo.experiments.polyloss as exp
from zoo import harness
from zoo.catalogue import get, repo_root
from zoo.experiments.polyloss import EXPERIMENT, arm_epsilons
from zoo.harness import Env, JobRecord, Table
from zoo.reproduce import main
from tests.experiments.armspy import JobSpy

ID = "polyloss"
# What each arm is, independently of the config: the claims are about these epsilons.
EXPECTED_EPS = {"ce": 0.0, "poly1": 2.0, "poly1_eps1": 1.0, "poly1_neg": -1.0}


def _spec_cfg(quick: bool = False) -> tuple[dict[str, Any], list[int]]:
    r = get(ID).spec.reproduction
    assert r is not None
    cfg, seeds = dict(r.config), list(r.seeds)
    if quick:
        cfg.update(r.quick.config)
        seeds = list(r.quick.seeds or seeds)
    return cfg, seeds


def _env() -> Env:
    return Env("cpu", repo_root() / "data", quick=True)


def test_arm_table_gives_each_arm_its_epsilon() -> None:
    """The config's arm table, the arm descriptions and the claims' epsilons agree."""
    spec = get(ID).spec
    cfg, _ = _spec_cfg()
    assert arm_epsilons(cfg) == EXPECTED_EPS
    assert list(EXPERIMENT.arms(cfg)) == list(spec.reproduction.arms) == list(EXPECTED_EPS)
    for arm, text in spec.reproduction.arms.items():
        said = re.search(r"epsilon = (-?\d+(?:\.\d+)?)", text)
        assert said is not None, (arm, text)
        assert float(said.group(1)) == EXPECTED_EPS[arm], (arm, text)


class _Spy(JobSpy):
    """Wraps the experiment's job and its loss function: which epsilon, which batches, which init."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, scale: float = 1.0) -> None:
        super().__init__(monkeypatch, EXPERIMENT)
        self.eps: dict[tuple[str, int], list[float]] = {}
        self.targets: dict[tuple[str, int], list[torch.Tensor]] = {}
        real_loss = exp.poly1_cross_entropy

        def loss(logits: torch.Tensor, y: torch.Tensor, *args: Any, **kw: Any) -> torch.Tensor:
            eps = kw.get("epsilon", args[0] if args else 1.0)  # poly1_cross_entropy's default is 1
            self.eps[self.current].append(float(eps))
            self.targets[self.current].append(y.clone())
            return scale * real_loss(logits, y, *args, **kw)

        monkeypatch.setattr(exp, "poly1_cross_entropy", loss)

    def start_job(self, key: tuple[str, int]) -> None:
        self.eps[key], self.targets[key] = [], []


def _one_epoch_cfg(**over: Any) -> dict[str, Any]:
    cfg, _ = _spec_cfg()
    return {**cfg, "epochs": 1, **over}


def test_each_arm_trains_with_its_epsilon_from_the_same_init_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _Spy(monkeypatch)
    cfg = _one_epoch_cfg()
    seeds = [0, 1]
    res = harness.run(EXPERIMENT, cfg, seeds, _env(), workers=1)
    n_train = EXPERIMENT.setup(cfg, _env())["mnist1d"].n_train  # val_fraction 0: the whole training split
    steps = math.ceil(n_train / cfg["batch_size"])
    for arm, eps in EXPECTED_EPS.items():
        for seed in seeds:
            # Every optimizer step of the arm went through Poly-1 at the arm's epsilon.
            assert spy.eps[(arm, seed)] == [eps] * steps, (arm, seed)
    for seed in seeds:
        ref = ("ce", seed)
        for arm in EXPECTED_EPS:
            # Fair arms: the seed's initial weights and batch order, whatever the arm.
            for k, v in spy.init[(arm, seed)].items():
                assert torch.equal(v, spy.init[ref][k]), (arm, seed, k)
            assert all(torch.equal(a, b) for a, b in zip(spy.targets[(arm, seed)], spy.targets[ref], strict=True))
    # ... and the seeds are different draws.
    assert not torch.equal(spy.init[("ce", 0)]["0.weight"], spy.init[("ce", 1)]["0.weight"])
    assert not torch.equal(spy.targets[("ce", 0)][0], spy.targets[("ce", 1)][0])
    # After one epoch from the same start, every arm's weights and training P_t differ from every other's.
    for seed in seeds:
        finals = {a: torch.cat([p.detach().flatten() for p in spy.models[(a, seed)].parameters()])
                  for a in EXPECTED_EPS}
        arms = list(EXPECTED_EPS)
        for i, a in enumerate(arms):
            for b in arms[i + 1:]:
                assert not torch.allclose(finals[a], finals[b]), (a, b, seed)
    pts = {a: res.metrics[a]["train_pt"][0] for a in EXPECTED_EPS}
    assert len(set(pts.values())) == len(pts), pts


def test_the_loss_the_experiment_computes_is_the_one_it_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the spied loss scaled to zero (and no weight decay) no arm moves: training uses that loss."""
    spy = _Spy(monkeypatch, scale=0.0)
    cfg = _one_epoch_cfg()
    cfg["optimizer"] = {**cfg["optimizer"], "weight_decay": 0.0}
    harness.run(EXPERIMENT, cfg, [0], _env(), workers=1)
    for arm in EXPECTED_EPS:
        assert spy.eps[(arm, 0)], arm
        for k, v in spy.models[(arm, 0)].state_dict().items():
            assert torch.equal(v, spy.init[(arm, 0)][k]), (arm, k)


def test_curves_are_per_epoch_mean_and_band_over_seeds() -> None:
    cfg = {"arms": {"ce": 0.0, "poly1": 2.0}, "epochs": 3}
    acc = {("ce", 0): [10.0, 20.0, 30.0], ("ce", 1): [12.0, 16.0, 50.0],
           ("poly1", 0): [1.0, 2.0, 3.0], ("poly1", 1): [3.0, 4.0, 5.0]}
    bins = 15
    rel = {"rel_acc": [0.5] * bins, "rel_conf": [0.5] * bins, "rel_count": [1.0] * bins}
    records = [JobRecord(a, s, {}, {"test_acc": v, **rel}) for (a, s), v in acc.items()]
    acc_panel, reliability = EXPERIMENT.curves(cfg, Table([0, 1], records))
    assert acc_panel.x == [1.0, 2.0, 3.0]
    assert acc_panel.series["ce"] == pytest.approx([11.0, 18.0, 40.0])
    assert acc_panel.bands["ce"] == ([10.0, 16.0, 30.0], [12.0, 20.0, 50.0])
    assert acc_panel.series["poly1"] == pytest.approx([2.0, 3.0, 4.0])
    assert set(reliability.series) == {"perfect calibration", "ce", "poly1"}


def test_quick_run_is_identical_for_one_and_two_workers(tmp_path, capsys) -> None:
    spec = get(ID).spec
    cfg, seeds = _spec_cfg(quick=True)
    out = {}
    for w in (1, 2):
        assert main([ID, "--quick", "--no-progress", "--workers", str(w), "--out", str(tmp_path / f"w{w}")]) == 0
        out[w] = {f: json.loads((tmp_path / f"w{w}" / f).read_text())
                  for f in ("jobs.json", "metrics.json", "curves.json")}
    assert "quick budget" in capsys.readouterr().out
    assert out[1] == out[2]
    jobs = out[1]["jobs.json"]
    assert [(j["arm"], j["seed"]) for j in jobs] == [(a, s) for s in seeds for a in EXPECTED_EPS]
    metrics = out[1]["metrics.json"]["arms"]
    for arm in spec.reproduction.arms:
        for metric in spec.reproduction.metrics:
            values = metrics[arm][metric]
            assert len(values) == len(seeds) and all(math.isfinite(v) for v in values), (arm, metric, values)
        assert 0.0 <= metrics[arm]["test_acc"][0] <= 100.0
        assert 0.0 < metrics[arm]["train_pt"][0] < 1.0
    acc_curve = out[1]["curves.json"][0]
    assert len(acc_curve["series"]) == len(EXPECTED_EPS)
    assert all(len(v) == cfg["epochs"] == len(acc_curve["x"]) for v in acc_curve["series"].values())
