"""Wiring of zoo.experiments.backprop_free_training_comparison."""

from __future__ import annotations

import pytest

from tests.experiments.local_rules import hand_table, job, quick
from zoo.experiments import _local_rules
from zoo.experiments import backprop_free_training_comparison as exp
from zoo.experiments._optbench import job_arms, slug, tuned_record
from zoo.learning_rules import forward_forward, mono_forward

ID = "backprop_free_training_comparison"


def test_job_arms() -> None:
    cfg = {"workloads": ["digits_mlp", "mnist1d_mlp"], "mf_lrs": [0.003], "ff_lrs": [0.03, 0.1]}
    arms = set(job_arms(exp._methods(cfg), cfg))
    assert arms == {f"{m}__{w}" for w in cfg["workloads"]
                    for m in ("mono_forward_lr0_003", "forward_forward_lr0_03", "forward_forward_lr0_1", "adam_tuned")}


def test_grid_arm_is_picked_by_validation_per_workload() -> None:
    cfg = {"workloads": ["digits_mlp", "mnist1d_mlp"], "mf_lrs": [0.001, 0.01], "ff_lrs": [0.03]}
    arms = ([f"mono_forward_lr{slug(lr)}__digits_mlp" for lr in cfg["mf_lrs"]]
            + [f"mono_forward_lr{slug(lr)}__mnist1d_mlp" for lr in cfg["mf_lrs"]]
            + ["forward_forward_lr0_03__digits_mlp", "forward_forward_lr0_03__mnist1d_mlp"])
    table = hand_table(arms, [0, 1], val=[60.0, 50.0, 40.0, 45.0, 1.0, 1.0], test=[10.0, 90.0, 90.0, 10.0, 1.0, 1.0])
    derived: dict = {}
    _local_rules.grid_derive(exp._grids)(cfg, table, derived)
    assert derived["mono_forward"]["digits_mlp_lr"] == [0.001] * 2 and derived["mono_forward"]["mnist1d_mlp_lr"] == [0.01] * 2
    assert derived["mono_forward"]["digits_mlp_test_acc"] == [10.0, 9.0]


def test_each_arm_runs_the_rule_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = quick(ID)
    calls = {"mf": 0, "ff": 0}
    real_mf, real_ff = mono_forward.train_step, forward_forward.train_step
    monkeypatch.setattr(mono_forward, "train_step", lambda *a, **k: (calls.__setitem__("mf", calls["mf"] + 1), real_mf(*a, **k))[1])
    monkeypatch.setattr(forward_forward, "train_step", lambda *a, **k: (calls.__setitem__("ff", calls["ff"] + 1), real_ff(*a, **k))[1])
    job(exp.EXPERIMENT, cfg, f"mono_forward_lr{slug(cfg['mf_lrs'][0])}__digits_mlp")
    assert calls["mf"] > 0 and calls["ff"] == 0
    job(exp.EXPERIMENT, cfg, f"forward_forward_lr{slug(cfg['ff_lrs'][0])}__mnist1d_mlp")
    assert calls["ff"] > 0


def test_tuned_baseline_reads_the_recorded_lr_per_workload() -> None:
    cfg, _ = quick(ID)
    for w in cfg["workloads"]:
        assert job(exp.EXPERIMENT, cfg, f"adam_tuned__{w}").metrics["lr"] == float(tuned_record()["baselines"][w]["adam"]["lr"])
