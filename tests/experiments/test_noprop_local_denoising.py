"""Wiring of zoo.experiments.noprop_local_denoising: grids picked by validation, each arm runs its rule."""

from __future__ import annotations

import pytest

from tests.experiments.local_rules import hand_table, job, quick
from zoo.experiments import _local_rules
from zoo.experiments import noprop_local_denoising as exp
from zoo.experiments._optbench import job_arms, slug, tuned_record
from zoo.learning_rules import forward_forward, noprop

ID = "noprop_local_denoising"


def test_job_arms_are_every_grid_point_and_the_tuned_baseline() -> None:
    cfg = {"workloads": ["digits_mlp"], "noprop_lrs": [0.001, 0.01], "ff_lrs": [0.03]}
    assert set(job_arms(exp._methods(cfg), cfg)) == {
        "noprop_lr0_001__digits_mlp", "noprop_lr0_01__digits_mlp", "forward_forward_lr0_03__digits_mlp",
        "adam_tuned__digits_mlp"}
    assert exp._methods(cfg)["adam_tuned"].tuned_as == "adam"


def test_grid_arm_is_picked_by_validation_not_test() -> None:
    cfg = {"workloads": ["digits_mlp"], "noprop_lrs": [0.001, 0.003, 0.01], "ff_lrs": [0.03]}
    arms = [f"noprop_lr{slug(lr)}__digits_mlp" for lr in cfg["noprop_lrs"]] + ["forward_forward_lr0_03__digits_mlp"]
    table = hand_table(arms, [0, 1, 2], val=[50.0, 70.0, 60.0, 40.0], test=[40.0, 55.0, 80.0, 30.0])
    derived: dict = {"noprop_lr0_001": {}, "noprop_lr0_003": {}}
    _local_rules.grid_derive(exp._grids)(cfg, table, derived)
    assert derived["noprop"]["digits_mlp_lr"] == [0.003] * 3
    assert derived["noprop"]["digits_mlp_test_acc"] == [55.0, 54.0, 53.0], "the validation-best point, not the test-best"
    assert derived["forward_forward"]["digits_mlp_lr"] == [0.03] * 3
    assert "noprop_lr0_001" not in derived, "grid points stay internal"


def test_each_arm_runs_the_rule_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = quick(ID)
    calls = {"noprop": 0, "ff": 0}
    real_np, real_ff = noprop.train_block_step, forward_forward.train_step

    def np_step(*a, **k):
        calls["noprop"] += 1
        return real_np(*a, **k)

    def ff_step(*a, **k):
        calls["ff"] += 1
        return real_ff(*a, **k)

    monkeypatch.setattr(noprop, "train_block_step", np_step)
    monkeypatch.setattr(forward_forward, "train_step", ff_step)
    out = job(exp.EXPERIMENT, cfg, f"noprop_lr{slug(cfg['noprop_lrs'][0])}__digits_mlp")
    batches = -(-240 // 64)  # 300 examples less the 20% validation split, batch 64
    assert calls == {"noprop": cfg["noprop_T"] * batches * 2, "ff": 0}
    assert out.metrics["grad_evals"] == cfg["noprop_T"] * batches * 2 and len(out.series["test_acc"]) == 2
    out = job(exp.EXPERIMENT, cfg, f"forward_forward_lr{slug(cfg['ff_lrs'][0])}__digits_mlp")
    assert calls["ff"] == batches * 2 and out.metrics["grad_evals"] == batches * 2


def test_tuned_baseline_reads_the_recorded_lr() -> None:
    cfg, _ = quick(ID)
    out = job(exp.EXPERIMENT, cfg, "adam_tuned__digits_mlp")
    assert out.metrics["lr"] == float(tuned_record()["baselines"]["digits_mlp"]["adam"]["lr"])


def test_blocks_have_the_workload_mlp_widths() -> None:
    from zoo.workloads.optim import get_workload, load
    from zoo.catalogue import repo_root

    for w, hidden in (("digits_mlp", [64]), ("mnist1d_mlp", [128, 128])):
        wl = get_workload(w)
        assert _local_rules.hidden_sizes(wl, load(wl, repo_root() / "data", n_train=50, n_test=10)) == hidden
